#!/usr/bin/env bash
# One GPU call (~9 min on one H100) for the toy-world studies of issues 19 and 20, side by side on one GPU:
#   * tools/gpu/quality.sh: the fixed prompt set with ISM, SDS and the round's candidate, plus ablation rows;
#   * tools/avatar/study.py: toy avatars on held-out poses with the toy pose ControlNet, with it also in the
#     inversion steps, and without it.
# Installs the carried wheels (.whl/, as tools/gpu/gpu_speed.sh). Everything lands in /tmp/studies and comes back
# packed as $OUT/toy_studies.tgz (the device returns at most 8 files), with the tables beside it.
set -uo pipefail
start=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=14
RES=/tmp/studies; mkdir -p "$RES"
# the avatar study starts once quality.sh has built gsplat's extension (it waits for the marker)
( while ! grep -q "gsplat build" "$RES/quality_sh.log" 2>/dev/null; do sleep 2; done
  timeout $(( ${TOTAL_S:-560} - 60 )) python3 -m tools.avatar.study "$RES/avatar_study" --device cuda \
    --jobs ${AVATAR_JOBS:-5} --random ${AVATAR_RANDOM:-1} > "$RES/avatar_study.log" 2>&1 ) &
OUT=$RES TOTAL_S=${TOTAL_S:-560} bash tools/gpu/quality.sh 2>&1 | tee "$RES/quality_sh.log"
wait
cat "$RES/avatar_study.log" | grep -v '^\[transformers' | tail -30
find "$RES" -name checkpoint.pt -delete
find "$RES/avatar_study" -name scene.ply -delete 2>/dev/null
cp "$RES"/quality*.txt "$RES"/avatar_study/study.txt "$OUT"/ 2>/dev/null
tar -czf "$OUT/toy_studies.tgz" -C "$RES" . && ls -la "$OUT"
echo "total: $(( $(date +%s) - start ))s"
