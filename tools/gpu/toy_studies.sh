#!/usr/bin/env bash
# One GPU call (~9 min on one H100) for the toy-world studies of issues 19 and 20, side by side on one GPU:
#   * tools/gpu/quality.sh: the fixed prompt set with ISM, SDS and the round's candidate, plus ablation rows;
#   * tools/avatar/study.py: toy avatars on held-out poses with the toy pose ControlNet, with it also in the
#     inversion steps, and without it.
# Installs the carried packages (tools/gpu/gpu_env.sh). Everything lands in /tmp/studies and comes back
# packed as $OUT/toy_studies.tgz (the device returns at most 8 files), with the tables beside it.
set -uo pipefail
start=$(date +%s)
source tools/gpu/gpu_env.sh
gpu_setup || exit 1
RES=/tmp/studies; mkdir -p "$RES"
# the avatar study (AVATAR_JOBS=0: none) starts once quality.sh has built gsplat's extension (it waits for the marker)
[ "${AVATAR_JOBS:-5}" != 0 ] && ( while ! grep -q "gsplat build" "$RES/quality_sh.log" 2>/dev/null; do sleep 2; done
  timeout $(( ${TOTAL_S:-560} - 60 )) python3 -m tools.avatar.study "$RES/avatar_study" --device cuda \
    --jobs ${AVATAR_JOBS:-5} --random ${AVATAR_RANDOM:-1} > "$RES/avatar_study.log" 2>&1 ) &
OUT=$RES TOTAL_S=${TOTAL_S:-560} bash tools/gpu/quality.sh 2>&1 | tee "$RES/quality_sh.log"
wait
cat "$RES/avatar_study.log" 2>/dev/null | grep -v '^\[transformers' | tail -30
find "$RES" -name checkpoint.pt -delete
find "$RES" \( -name scene.ply -o -name preview.png \) -delete 2>/dev/null  # the compare PNGs are made above; scenes and previews (~0.7 MB a run) would not fit the 16 MB
cp "$RES"/quality*.txt "$RES"/avatar_study/study.txt "$OUT"/ 2>/dev/null
tar -czf "$OUT/toy_studies.tgz" -C "$RES" . && ls -la "$OUT"
echo "total: $(( $(date +%s) - start ))s"
