#!/usr/bin/env bash
# Pack Ray for a GPU machine that has no network, small enough to travel with the repository (the working tree
# that travels is limited to 64 MiB; the plain Ray wheel is 79 MB). Run HERE, in the repository root:
#   tools/gpu/pack_ray.sh [PYTHON_VERSION]        (default 3.12, the GPU machine's)
# It downloads the Ray wheel and the small packages Ray needs that the GPU image lacks (jsonschema and its
# dependencies) into .whl/, then turns the Ray wheel into .whl/ray-slim.tar.xz (~18 MB): the Java jar, the web
# dashboard's static files and the libraries lucidkit does not use (rllib, data, serve, tune, train, llm) are
# left out and the three native binaries are stripped of symbols. Ray core (ray.init, actors, tasks) works from
# it; tools/gpu/gpu_env.sh unpacks it on the GPU machine. The jsonschema wheels stay in .whl/wheels/ for
# tools/gpu/pack_site.sh (run it after this).
set -euo pipefail
PY=${1:-3.12}
RAY=${RAY_VERSION:-2.60.0}
mkdir -p .whl/wheels
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || true  # .whl/ is in .gitignore already
dl() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl/wheels "$@"; }
dl "ray==$RAY" jsonschema jsonschema-specifications referencing rpds-py
work=$(mktemp -d)
unzip -q .whl/wheels/ray-"$RAY"-*.whl -d "$work"
rm -rf "$work"/ray/jars "$work"/ray/rllib "$work"/ray/data "$work"/ray/serve "$work"/ray/tune "$work"/ray/train \
       "$work"/ray/llm "$work"/ray/dashboard/client/build
find "$work" -name '*.js.map' -delete
strip --strip-unneeded "$work"/ray/_raylet.so "$work"/ray/core/src/ray/gcs/gcs_server "$work"/ray/core/src/ray/raylet/raylet
tar -C "$work" -cf - . | xz -9e -T2 > .whl/ray-slim.tar.xz
rm -rf "$work" .whl/wheels/ray-"$RAY"-*.whl
ls -la .whl/ray-slim.tar.xz
