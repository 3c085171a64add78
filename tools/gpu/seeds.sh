#!/usr/bin/env bash
# One GPU call (~3-5 min on one H100): `lucidkit bench quality` on several seeds side by side (MPS shares the GPU),
# to see whether a round's finding holds beyond seed 0. Each seed runs METHODS (default ism,ism-perpneg) on the
# oriented prompts (house, penguin), or with FULL=1 on the whole prompt set. Results: $OUT/seed<N>.json and .txt.
#   SEEDS=1,2,3 bash tools/gpu/seeds.sh                            # the oriented prompts on three more seeds
#   SEEDS=0 FULL=1 METHODS=ism,sds,ism-perpneg JOBS=15 bash tools/gpu/seeds.sh   # the whole set, one seed
set -uo pipefail
source tools/gpu/gpu_env.sh
gpu_setup || exit 1
OUT=${OUT:-docs/results}; mkdir -p "$OUT"
(nvidia-cuda-mps-control -d && echo "MPS daemon started") || echo "no MPS"
P=(--prompt "a house" --prompt "a penguin"); [ "${FULL:-0}" = 1 ] && P=()
filter() { grep --line-buffered -v -e '^\[transformers' -e 'should be kept in float32'; }
for seed in ${SEEDS//,/ }; do
  timeout ${LEFT_S:-480} python3 -m lucidkit.commands.cli bench quality --jobs ${JOBS:-8} --device cuda --seed "$seed" \
    --methods "${METHODS:-ism,ism-perpneg}" "${P[@]}" --out "$OUT/seed$seed.json" 2>&1 | filter > "/tmp/seed$seed.log" &
done
wait
for seed in ${SEEDS//,/ }; do tail -8 "/tmp/seed$seed.log"; done
