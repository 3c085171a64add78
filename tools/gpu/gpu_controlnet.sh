#!/usr/bin/env bash
# One GPU call: train the toy pose ControlNet and measure it (python -m tools.toyworld.train_controlnet).
# Needs the wheel folder .whl/ carried along, with the wheels of diffusers, importlib_metadata, zipp and
# smplx 0.1.28 (the GPU machine has none of them). Results land in $OUT: toy-controlnet-pose/ (copy it to
# samples/), controlnet_log.txt, controlnet_eval.json, controlnet_samples.png (condition | with | without | truth).
set -uo pipefail
source tools/gpu/gpu_env.sh
gpu_setup || exit 1
# lucidkit.samples (the toy prior, the body, the poses) is a package only once lucidkit is installed
OUT=${OUT:-outputs/toy-controlnet}
timeout ${TOTAL_S:-570} python3 -m tools.toyworld.train_controlnet --out "$OUT" --minutes ${MINUTES:-5} ${ARGS:-} 2>&1 \
  | grep -v -e '^\[transformers' -e 'should be kept in float32' -e '^Loading weights'
