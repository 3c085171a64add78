#!/usr/bin/env bash
# One GPU call (~8 min on one H100): the toy-world quality benchmark of issue 19 with ISM, SDS and the round's
# candidate on the fixed prompt set (toy preset), plus the ablation rows of docs/quality.md on three prompts, then side-by-side PNGs
# (truth | generated | alpha) of the failure prompts. Installs nothing from the network: diffusers and gsplat must
# already be importable (PYTHONPATH); lucidkit itself is installed editable from this folder with --no-index.
# Results land in $OUT (default docs/results): quality.json / quality.txt / quality.log, compare/*.png.
set -uo pipefail
start=$(date +%s)
export PYTHONPATH=${PYTHONPATH:-}:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=14
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "editable install failed"
OUT=${OUT:-docs/results}
mkdir -p "$OUT/compare"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
(nvidia-cuda-mps-control -d && echo "MPS daemon started") || echo "no MPS: worker processes time-share the GPU"

# gsplat compiles its CUDA extension on first use (~80 s): once here, not in 15 racing workers
python3 - <<'EOF'
import torch
from lucidkit.splat.init import init_sphere
from lucidkit.splat.render import render_state
from lucidkit.bench.quality import eval_cameras
from lucidkit.cameras import CameraConfig
out = render_state(init_sphere(100, device="cuda"), eval_cameras(CameraConfig())[:1], torch.ones(1, 3))
print("gsplat ready:", tuple(out.rgb.shape))
EOF
echo "gsplat build: $(( $(date +%s) - start ))s"

# Two benchmark invocations side by side (MPS shares the GPU): the fixed set with ISM, SDS and the round's candidate
# (MAIN_VARIANTS, on every prompt), and ablation rows on three prompts (ABLATIONS). Each writes its JSON after every
# finished run; the .txt tables are written when an invocation finishes, the .log files have every row either way.
# Next GPU round: the preset (refinement on 32 fixed views, `guidance.refine_views`) and SDS on the fixed set, with
# a refinement twice as long as the candidate row (from update 300, densification stopped there; round 9 on the CPU
# traded the patterns for PSNR); ablation on four prompts: the refinement's strength at 0.25. JOBS_OUT=6 adds the
# preset on twelve prompts outside the fixed set.
MAIN_VARIANTS=(
  --variant "ism-r300=ism:guidance.refine_from=300;densify.stop_iter=300"
)
ABLATIONS=(
  --variant "ism-s25=ism:guidance.refine_strength=0.25"
)
P=(--prompt "a red and yellow striped cube" --prompt "a red and yellow checkered pyramid"
   --prompt "a house" --prompt "a penguin")
left=$(( ${TOTAL_S:-560} - ($(date +%s) - start) - 40 ))
echo "quality: ${left}s left"
filter() { grep --line-buffered -v -e '^\[transformers' -e 'should be kept in float32'; }
# the preset on twelve prompts outside the fixed set but inside the prior's world (issue 19: accuracy within 5 points)
OUTSIDE=(--prompt "a purple cube" --prompt "a red sphere" --prompt "a blue cone" --prompt "an orange torus"
  --prompt "a yellow cylinder" --prompt "a green pyramid" --prompt "a blue and white striped cube"
  --prompt "a red and yellow checkered sphere" --prompt "a red and yellow striped cylinder"
  --prompt "a green and white checkered pyramid" --prompt "a green and white striped torus"
  --prompt "a blue and white checkered cone")
[ "${JOBS_OUT:-0}" != 0 ] && timeout "$left" python3 -m lucidkit.commands.cli bench quality --jobs ${JOBS_OUT} \
  --device cuda --methods ism "${OUTSIDE[@]}" --out "$OUT/quality_outside.json" 2>&1 | filter > "$OUT/quality_outside.log" &
timeout "$left" python3 -m lucidkit.commands.cli bench quality --jobs ${JOBS_ABL:-4} --device cuda --methods ism \
  "${ABLATIONS[@]}" "${P[@]}" --out "$OUT/quality_ablation.json" 2>&1 | filter > "$OUT/quality_ablation.log" &
timeout "$left" python3 -m lucidkit.commands.cli bench quality --jobs ${JOBS:-12} --device cuda \
  --methods ${METHODS:-ism,sds} ${MAIN_VARIANTS[@]+"${MAIN_VARIANTS[@]}"} --out "$OUT/quality.json" 2>&1 | filter | tee "$OUT/quality.log"
wait
cat "$OUT/quality_ablation.log"; tail -20 "$OUT/quality_outside.log" 2>/dev/null

# What the failures look like (truth | generated | alpha, two rings), and what was written
for run in "$OUT"/quality/{ism,ism-r300}/{a-red-and-yellow-striped-cube,a-blue-and-white-striped-torus,a-red-and-yellow-checkered-pyramid,a-house,a-penguin}; do
  [ -f "$run/scene.ply" ] || continue
  python3 tools/quality/probe.py compare "$run" 2>/dev/null | tee -a "$OUT/compare/compare.txt"
  cp "$run/compare.png" "$OUT/compare/$(basename "$(dirname "$run")")-$(basename "$run").png"
done
# keep what is small and useful: configs, manifests and the main ISM scenes (the ablations' scenes go)
find "$OUT"/quality* -name checkpoint.pt -delete 2>/dev/null
find "$OUT"/quality* -name scene.ply -not -path "*/quality/ism/*" -not -path "*/quality/ism-r300/*" -delete 2>/dev/null
echo "total: $(( $(date +%s) - start ))s"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
true
