#!/usr/bin/env bash
# One GPU call (~9 min on one H100) for issue 20: the avatar update's speed at true scale (SD 1.5 + OpenPose
# ControlNet shapes, random weights: `bench speed --cases avatar`), then the toy avatar study on held-out poses
# (tools/avatar/study.py, 18 runs side by side), then the compiled avatar case with the time left. Results come back
# in $OUT: speed.json/.txt, study.json/.txt, logs.tgz, and gsplat_ext.tgz (the built extension, for later calls).
set -uo pipefail
start=$(date +%s)
RES=/tmp/avatar_gpu; mkdir -p "$RES"
OUT_FINAL=$OUT
OUT=$RES CASES=avatar STEPS=20 SPEED_S=240 GPU_TESTS=1 TESTS=tests/test_body_hands.py bash tools/gpu/gpu_speed.sh
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
cp "$RES/speed.json" "$RES/speed_eager.json" 2>/dev/null
timeout $(( ${TOTAL_S:-540} - ($(date +%s) - start) - 150 )) python3 -m tools.avatar.study "$RES/study" --device cuda \
  --jobs ${AVATAR_JOBS:-9} --random ${AVATAR_RANDOM:-1} 2>&1 | grep -v '^\[transformers' | tail -30
left=$(( ${TOTAL_S:-540} - ($(date +%s) - start) - 20 ))
if [ "$left" -gt 120 ]; then
  timeout -k 5 "$left" python3 -m lucidkit.commands.cli bench speed --steps 20 --cases avatar-fast --out "$RES/speed_fast.json" 2>&1 \
    | grep -v '^\[transformers' | tail -8
fi
cp "$RES"/speed*.json "$RES"/speed.txt "$RES"/study/study.json "$RES"/study/study.txt "$RES"/gsplat_ext.tgz "$OUT_FINAL"/ 2>/dev/null
tar -czf "$OUT_FINAL/logs.tgz" -C "$RES" $(cd "$RES" && ls *.log study/*/*.log 2>/dev/null) 2>/dev/null
ls -la "$OUT_FINAL"; echo "total: $(( $(date +%s) - start ))s"
