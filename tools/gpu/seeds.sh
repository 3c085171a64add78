#!/usr/bin/env bash
# One GPU call (~3-5 min on one H100): `lucidkit bench quality` on several seeds side by side (MPS shares the GPU),
# to see whether a round's finding holds beyond seed 0. Each seed runs METHODS (default ism,ism-perpneg) on the
# oriented prompts (house, penguin), or with FULL=1 on the whole prompt set. Results: $OUT/seed<N>.json and .txt.
#   SEEDS=1,2,3 bash tools/gpu/seeds.sh                            # the oriented prompts on three more seeds
#   SEEDS=0 FULL=1 METHODS=ism,sds,ism-perpneg JOBS=15 bash tools/gpu/seeds.sh   # the whole set, one seed
# VARIANT="NAME=METHOD:KEY=VALUE;..." adds one ablation row (bench quality --variant); PROMPTS="a red cube|a house"
# picks the prompts (| between them) instead; TAG names the result files (default seed<N>); SETUP=0 skips gpu_setup.
set -uo pipefail
source tools/gpu/gpu_env.sh
if [ "${SETUP:-1}" = 1 ]; then
  gpu_setup || exit 1
  (nvidia-cuda-mps-control -d && echo "MPS daemon started") || echo "no MPS"
fi
OUT=${OUT:-docs/results}; mkdir -p "$OUT"
P=(--prompt "a house" --prompt "a penguin"); [ "${FULL:-0}" = 1 ] && P=()
if [ -n "${PROMPTS:-}" ]; then P=(); IFS='|' read -ra list <<< "$PROMPTS"; for p in "${list[@]}"; do P+=(--prompt "$p"); done; fi
V=(); [ -n "${VARIANT:-}" ] && V=(--variant "$VARIANT")
filter() { grep --line-buffered -v -e '^\[transformers' -e 'should be kept in float32'; }
for seed in ${SEEDS//,/ }; do
  timeout ${LEFT_S:-480} python3 -m lucidkit.commands.cli bench quality --jobs ${JOBS:-8} --device cuda --seed "$seed" \
    --methods "${METHODS:-ism,ism-perpneg}" ${V[@]+"${V[@]}"} ${P[@]+"${P[@]}"} --out "$OUT/${TAG:-seed$seed}.json" \
    2>&1 | filter > "$OUT/${TAG:-seed$seed}.log" &
done
wait
for seed in ${SEEDS//,/ }; do tail -8 "$OUT/${TAG:-seed$seed}.log"; done
