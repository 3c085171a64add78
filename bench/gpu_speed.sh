#!/usr/bin/env bash
# On the GPU machine (bare, no network): install the carried wheels, then run the speed benchmark and the GPU
# test tier. Results land in $OUT (speed.json, speed.txt, logs); copy them to bench/results/.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=14
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "editable install failed"
OUT=${OUT:-bench/results}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
python3 -m lucidkit.commands.cli bench speed --steps ${STEPS:-8} --cases ${CASES:-fast,fast-perpneg,eager,naive,low-memory} \
  --out "$OUT/speed.json" 2>&1 | grep -v '^\[transformers' | tee "$OUT/speed.log"
if [ "${GPU_TESTS:-1}" = 1 ]; then
  python3 -m pytest -q -p no:cacheprovider tests/test_gpu_fastpath.py tests/test_render.py 2>&1 | tail -5 | tee "$OUT/gpu_tests.log"
fi
# keep the JIT-built gsplat extension (if small enough to come back) so later calls can skip its ~90 s build
ext=$(python3 -c "import torch.utils.cpp_extension as c; print(c._get_build_directory('gsplat_cuda', False))" 2>/dev/null)
[ -d "$ext" ] && tar -czf "$OUT/gsplat_ext.tgz" -C "$(dirname "$ext")" "$(basename "$ext")" && ls -la "$OUT/gsplat_ext.tgz"
