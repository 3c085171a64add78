#!/usr/bin/env bash
# One GPU call: the GPU test tier (which also JIT-builds gsplat once), then the full toy-world quality benchmark
# with parallel worker processes sharing the GPU (through MPS when the machine has it). Run from the repository root
# (bash tools/gpu/gpu_quality.sh). Results land in $OUT (default docs/results/).
set -uo pipefail
start=$(date +%s)
source tools/gpu/gpu_env.sh
gpu_setup || exit 1
OUT=${OUT:-docs/results}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
(nvidia-cuda-mps-control -d && echo "MPS daemon started") || echo "no MPS: worker processes time-share the GPU"
timeout ${TESTS_S:-240} python3 -m pytest -q -p no:cacheprovider --tb=short tests/test_render.py tests/test_gpu_fastpath.py \
  2>&1 | grep -v '^\[transformers' | tail -40 | tee "$OUT/gpu_tests.log"
left=$(( ${TOTAL_S:-575} - ($(date +%s) - start) ))
echo "quality: ${left}s left"
timeout "$left" python3 -m lucidkit.commands.cli bench quality --jobs ${JOBS:-15} --device cuda ${QUALITY_ARGS:-} \
  --out "$OUT/quality.json" 2>&1 | grep -v -e '^\[transformers' -e 'should be kept in float32' | tee "$OUT/quality.log"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
true
