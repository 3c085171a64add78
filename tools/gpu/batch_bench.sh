#!/usr/bin/env bash
# On the GPU machine (bare, no network): install the carried packages, then run tools/gpu/batch_bench.py MODE.
# Prepare here, once: .whl/site.tar.xz (tools/gpu/pack_site.sh) and Ray packed small (.whl/ray-slim.tar.xz,
# tools/gpu/pack_ray.sh); carry both and .whl/gsplat_ext.tar.xz. Then, on one warm machine, one call each:
#   bash tools/gpu/batch_bench.sh batch        # 2 prompts x 200 updates through `lucidkit batch`, one GPU
#   bash tools/gpu/batch_bench.sh separate     # the same as 2 `lucidkit generate` processes (or: after
#                                              # tools/gpu/startup.sh, `report` takes them from its JSON)
#   bash tools/gpu/batch_bench.sh scale        # several GPUs only: 1 worker vs all (2 prompts per GPU)
# Extra arguments go to batch_bench.py (--prompts N, --steps S, --compile MODE). Each call prints every result so
# far and writes it to $OUT/batch_bench.txt.
set -uo pipefail
source tools/gpu/gpu_env.sh
gpu_setup || exit 1
timeout -k 10 ${BENCH_S:-570} python3 tools/gpu/batch_bench.py "$@"
