#!/usr/bin/env bash
# On the GPU machine (bare, no network): install the carried wheels, then run the speed benchmark and the GPU
# test tier (CASES= skips the benchmark; PROFILE_LOOP=1 adds tools/perf/profile_loop.py; SCRIPT=tools/perf/x.py runs x
# with $SCRIPT_ARGS). Run from the repository root: bash tools/gpu/gpu_speed.sh. Results land in $OUT (default
# docs/results/: speed.json, speed.txt, logs). CASES=avatar,avatar-fast times lucidkit avatar's update (SD 1.5 + a
# random OpenPose ControlNet; needs the smplx wheel in .whl/ besides diffusers and gsplat).
set -uo pipefail
OUT=${OUT:-docs/results}
source tools/gpu/gpu_env.sh
gpu_setup || exit 1  # the carried wheels, lucidkit, gsplat's CUDA extension (carried or built, ~90 s)
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
keep_gsplat_ext  # in $OUT, so later calls can skip its ~90 s build
