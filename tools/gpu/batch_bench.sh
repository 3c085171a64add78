#!/usr/bin/env bash
# On the GPU machine (bare, no network): install the carried packages, then run tools/gpu/batch_bench.py MODE.
# Prepare here, once: the wheels bench/gpu_speed.sh uses (diffusers, gsplat, ... in .whl/) and Ray packed small
# by tools/gpu/pack_ray.sh (.whl/ray-slim.tar.xz + jsonschema wheels). Then, on one warm machine, one call each:
#   bash tools/gpu/batch_bench.sh batch        # 3 prompts × 100 updates through `lucidkit batch`, one GPU
#   bash tools/gpu/batch_bench.sh separate     # the same as 3 `lucidkit generate` processes (again if cut off)
#   bash tools/gpu/batch_bench.sh scale        # several GPUs only: 1 worker vs all (2 prompts per GPU)
# Extra arguments go to batch_bench.py (--prompts N, --steps S). Each call prints every result so far and writes
# it to $OUT/batch_bench.txt.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=14
if ! python3 -c "import ray, diffusers, gsplat" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  tar -C /tmp/site -xJf .whl/ray-slim.tar.xz || exit 1
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "editable install failed"
t0=$(date +%s); python3 -c "from gsplat.cuda._backend import _C; assert _C is not None" && echo "gsplat ready in $(( $(date +%s) - t0 )) s"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout -k 10 ${BENCH_S:-570} python3 tools/gpu/batch_bench.py "$@"
