#!/usr/bin/env bash
# One GPU call: the speed benchmark (SD 2.1-base shapes, random weights), the GPU test tier, then as much of the
# toy-world quality benchmark as the remaining time allows. Run from the repository root
# (bash tools/gpu/gpu_all.sh). Results land in $OUT (default docs/results/).
set -uo pipefail
source tools/gpu/gpu_env.sh
gpu_setup || exit 1
OUT=${OUT:-docs/results}
start=$(date +%s)
timeout ${SPEED_S:-330} python3 -m lucidkit.commands.cli bench speed --steps ${STEPS:-5} \
  --cases ${CASES:-fast,fast-perpneg,naive,low-memory} --out "$OUT/speed.json" 2>&1 | grep -v -e '^\[transformers' -e 'should be kept in float32' -e 'Dynamo detected' -e 'torch._dynamo.utils' -e '^$' -e 'This call originates' -e 'File "' -e 'if dtype ==' | tee "$OUT/speed.log"
python3 -m pytest -q -p no:cacheprovider tests/test_gpu_fastpath.py tests/test_render.py 2>&1 | tail -3 | tee "$OUT/gpu_tests.log"
left=$(( ${TOTAL_S:-570} - ($(date +%s) - start) ))
echo "quality: ${left}s left"
[ "$left" -gt 30 ] && timeout "$left" python3 -m lucidkit.commands.cli bench quality ${QUALITY_ARGS:-} --out "$OUT/quality.json" 2>&1 | grep -v '^\[transformers' | tee "$OUT/quality.log"
true
