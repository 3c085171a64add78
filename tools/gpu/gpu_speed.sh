#!/usr/bin/env bash
# On the GPU machine (bare, no network): install the carried wheels, then run the speed benchmark and the GPU
# test tier (CASES= skips the benchmark; PROFILE_LOOP=1 adds tools/perf/profile_loop.py; SCRIPT=tools/perf/x.py runs x
# with $SCRIPT_ARGS). Run from the repository root: bash tools/gpu/gpu_speed.sh. Results land in $OUT (default
# docs/results/: speed.json, speed.txt, logs). CASES=avatar,avatar-fast times lucidkit avatar's update (SD 1.5 + a
# random OpenPose ControlNet; needs the smplx wheel in .whl/ besides diffusers and gsplat).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=14
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "editable install failed"
OUT=${OUT:-docs/results}
# gsplat builds its CUDA extension on first use (~90 s); a build carried from an earlier machine
# (.whl/gsplat_ext.tgz, the tarball this script leaves in $OUT) is unpacked and marked newer than its sources
ext=$(python3 -c "import torch.utils.cpp_extension as c; print(c._get_build_directory('gsplat_cuda', False))" 2>/dev/null)
if [ -f .whl/gsplat_ext.tgz ] && [ -n "$ext" ] && ! ls "$ext"/*.so >/dev/null 2>&1; then
  mkdir -p "$(dirname "$ext")" && tar -xzf .whl/gsplat_ext.tgz -C "$(dirname "$ext")" && find "$ext" -exec touch {} +
fi
t0=$(date +%s); python3 -c "from gsplat.cuda._backend import _C; assert _C is not None" && echo "gsplat ready in $(( $(date +%s) - t0 )) s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
if [ -n "${CASES-default}" ]; then
  timeout -k 10 ${SPEED_S:-480} python3 -m lucidkit.commands.cli bench speed --steps ${STEPS:-30} --cases ${CASES:-fast,fast-perpneg,eager,naive,low-memory} \
    --out "$OUT/speed.json" 2>&1 | grep --line-buffered -v '^\[transformers' | tee "$OUT/speed.log"
fi
if [ "${GPU_TESTS:-1}" = 1 ]; then
  timeout -k 10 ${TESTS_S:-300} python3 -m pytest -q -p no:cacheprovider ${TESTS:-tests/test_gpu_fastpath.py tests/test_render.py} 2>&1 | tail -30 | tee "$OUT/gpu_tests.log"
fi
if [ -n "${SCRIPT-}" ]; then  # a measurement script, e.g. SCRIPT=tools/perf/render_check.py
  timeout -k 10 ${SCRIPT_S:-400} python3 $SCRIPT ${SCRIPT_ARGS-} 2>&1 | grep --line-buffered -v '^\[transformers' | tee "$OUT/$(basename $SCRIPT .py).txt"
fi
if [ "${PROFILE_LOOP:-0}" = 1 ]; then  # where a loop update waits (tools/perf/profile_loop.py)
  timeout -k 10 ${PROFILE_S:-300} python3 tools/perf/profile_loop.py > "$OUT/profile_loop.txt" 2> "$OUT/profile_loop.err"; tail -40 "$OUT/profile_loop.txt"
fi
# keep the JIT-built gsplat extension (if small enough to come back) so later calls can skip its ~90 s build
ext=$(python3 -c "import torch.utils.cpp_extension as c; print(c._get_build_directory('gsplat_cuda', False))" 2>/dev/null)
[ -d "$ext" ] && [ ! -f .whl/gsplat_ext.tgz ] && tar -czf "$OUT/gsplat_ext.tgz" -C "$(dirname "$ext")" "$(basename "$ext")" && ls -la "$OUT/gsplat_ext.tgz"
