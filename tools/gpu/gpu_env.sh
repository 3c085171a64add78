# Sourced by the tools/gpu/*.sh scripts on a bare GPU machine (no network), from the repository root:
#   gpu_setup          the carried packages into /tmp/site: .whl/site.tar.xz and .whl/ray-slim.tar.xz (made here by
#                      tools/gpu/pack_site.sh and tools/gpu/pack_ray.sh; xz keeps them small enough to travel) and
#                      any loose .whl/*.whl; lucidkit in editable mode; gsplat's CUDA extension (unpacked from
#                      .whl/gsplat_ext.tar.xz or .tgz when an earlier call brought it back, else built: ~90 s);
#                      prints the GPU and torch
#   keep_gsplat_ext    leave the built extension in $OUT/gsplat_ext.tgz (if not carried already), for later calls
# Carry the archives by name (run's carry: .whl/site.tar.xz, .whl/gsplat_ext.tar.xz, .whl/ray-slim.tar.xz).
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=14

gsplat_ext_dir() {
  python3 -c "import torch.utils.cpp_extension as c; print(c._get_build_directory('gsplat_cuda', False))" 2>/dev/null
}

carried_ext() { ls .whl/gsplat_ext.tar.xz .whl/gsplat_ext.tgz 2>/dev/null | head -1; }

gpu_setup() {
  mkdir -p /tmp/site
  local pack
  for pack in .whl/site.tar.xz .whl/ray-slim.tar.xz; do  # unpacked once per machine
    if [ -f "$pack" ] && [ ! -f "/tmp/site/.$(basename "$pack").done" ]; then
      tar -C /tmp/site -xJf "$pack" && touch "/tmp/site/.$(basename "$pack").done" || return 1
    fi
  done
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
  fi
  python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "editable install failed"
  # a build carried from an earlier machine is unpacked and marked newer than its sources
  local ext t0
  ext=$(gsplat_ext_dir)
  if [ -n "$(carried_ext)" ] && [ -n "$ext" ] && ! ls "$ext"/*.so >/dev/null 2>&1; then
    mkdir -p "$(dirname "$ext")" && tar -xf "$(carried_ext)" -C "$(dirname "$ext")" && find "$ext" -exec touch {} +
  fi
  t0=$(date +%s); python3 -c "from gsplat.cuda._backend import _C; assert _C is not None" && echo "gsplat ready in $(( $(date +%s) - t0 )) s"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__)"
}

keep_gsplat_ext() {
  local ext
  ext=$(gsplat_ext_dir)
  [ -d "$ext" ] && [ -z "$(carried_ext)" ] && tar -czf "$OUT/gsplat_ext.tgz" -C "$(dirname "$ext")" "$(basename "$ext")" && ls -la "$OUT/gsplat_ext.tgz"
  true
}
