#!/usr/bin/env bash
# Pack the wheels a GPU machine lacks (diffusers, gsplat, smplx, ... : see ../shared/ENVIRONMENT.md for the list and
# the `pip download` line) into one small archive, .whl/site.tar.xz (~6 MB instead of ~14 MB of wheels), and
# gsplat's built extension (.whl/gsplat_ext.tgz, brought back from an earlier call's $OUT) into
# .whl/gsplat_ext.tar.xz (~2 MB). Run HERE, in the repository root, after downloading the wheels into .whl/wheels/:
#   bash tools/gpu/pack_site.sh
# tools/gpu/gpu_env.sh unpacks both on the GPU machine. Pure-Python wheels (and cp312 ones) are zip files that pip
# would only unpack, so unpacking them here into one folder is the same install.
set -euo pipefail
work=$(mktemp -d)
for wheel in .whl/wheels/*.whl; do unzip -q -o "$wheel" -d "$work"; done
tar -C "$work" -cf - . | xz -9e -T2 > .whl/site.tar.xz
rm -rf "$work"
if [ -f .whl/gsplat_ext.tgz ]; then
  work=$(mktemp -d)
  tar -xzf .whl/gsplat_ext.tgz -C "$work" && tar -C "$work" -cf - . | xz -9e -T2 > .whl/gsplat_ext.tar.xz
  rm -rf "$work" .whl/gsplat_ext.tgz
fi
ls -la .whl/*.tar.xz
