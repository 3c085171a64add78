#!/usr/bin/env bash
# On the GPU machine (bare, no network): start-up and speed of each way of running the prior (issue 24), as whole
# `lucidkit generate` processes on an SD 2.1-base folder with random weights: `lucidkit bench startup`
# (lucidkit/bench/startup.py).
# Prepare here, once: the packages tools/gpu/gpu_env.sh unpacks (.whl/site.tar.xz; .whl/gsplat_ext.tar.xz, gsplat's
# built extension from an earlier $OUT, saves its ~90 s build). Then, from the repository root:
#   bash tools/gpu/startup.sh                      # every mode: graphs, regional, off, full (+ cache import)
#   CASES=graphs,full bash tools/gpu/startup.sh    # some modes only
#   TESTS=tests/test_gpu_modes.py bash tools/gpu/startup.sh   # those tests first (at most 150 s)
# Cases run cheapest first and the results so far are written after each one to $OUT/startup.json and
# $OUT/startup.txt (a table). A case that cannot finish in the call's time is skipped: run the same command again on
# the still-warm machine and it continues with the cases not yet measured (/tmp/startup_bench keeps them).
set -uo pipefail
T0=$(date +%s)
OUT=${OUT:-docs/results}
mkdir -p "$OUT"
source tools/gpu/gpu_env.sh
gpu_setup || exit 1  # wheels, lucidkit, gsplat's extension: built before any timing, so no run below pays it
MODEL=${MODEL:-/tmp/sd21-random}
if [ -n "${TESTS:-}" ]; then
  timeout -k 5 150 python3 -m pytest -q -p no:cacheprovider $TESTS 2>&1 | tail -15 | tee "$OUT/gpu_tests.log"
fi
[ -f "$MODEL/model_index.json" ] || python3 tools/gpu/save_random_prior.py "$MODEL" 2>&1 | grep -v '^\[transformers' | tail -2
# the call's 600 s, less what the set-up took and a margin for the tarball and copies below
budget=$(( ${CALL_S:-585} - ($(date +%s) - T0) - 25 ))
echo "set-up took $(( $(date +%s) - T0 )) s; ${budget} s left for the cases"
timeout -k 10 $(( budget + 10 )) python3 -m lucidkit.commands.cli bench startup --model "$MODEL" \
  --cases "${CASES:-graphs,regional,encoder,off,full}" --steps "${STEPS:-200}" --budget "$budget" --out "$OUT/startup.json" \
  ${BENCH_ARGS-} 2>&1 | grep --line-buffered -v '^\[transformers'
tar -czf "$OUT/startup_logs.tgz" -C /tmp/startup_bench $(cd /tmp/startup_bench && ls *.log) 2>/dev/null
keep_gsplat_ext
