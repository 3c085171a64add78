"""Which levers cut the UNet call and the VAE encoder's forward+backward at true scale? (SD 2.1-base shapes,
random weights, bf16, CUDA). Each variant is compiled fresh and timed on the production `DiffusionPrior` methods;
the production setting is profiled and its CUDA time split by kernel family.

    python3 bench/profile_levers.py [V0 V5 U0 ...] > $OUT/levers.txt   # the named variants, or all

Predictions are written in bench/results/levers.md before the run; the results go beside them.
"""

from __future__ import annotations

import os
import sys
import time

import torch
import torch._inductor.config

from lucidkit.bench.speed import time_ms
from lucidkit.groupnorm import use_channels_last_group_norm
from lucidkit.prior import DiffusionPrior

B, SIZE = 4, 512
DEVICE = torch.device("cuda")
DEADLINE = time.monotonic() + float(os.environ.get("BUDGET_S", 560))
Inductor = torch._inductor.config
WANT = set(sys.argv[1:])  # variant names (V0, U6, ...); all when empty


def skip(label: str) -> bool:
    if WANT and label.split()[0] not in WANT:
        return True
    if time.monotonic() > DEADLINE:
        out(f"{label:<58} skipped (time budget)")
        return True
    return False


def out(*args) -> None:
    print(*args, flush=True)


def family(name: str) -> str | None:
    n = name.lower()
    if name.startswith(("##", "aten::", "cuda", "Torch-Compiled", "CompiledFunction")):
        return None  # annotations and CPU-side ops that merely enclose kernels
    if "nchwtonhwc" in n or "nhwctonchw" in n:
        return "layout transposes (cuDNN)"
    if n.startswith("triton"):  # first: inductor names fused kernels after their ops ("..._convolution_backward_...")
        return "triton (fused norm/elementwise)"
    if any(k in n for k in ("flash", "fmha", "attention", "sdpa")):  # before "fprop": cuDNN's SDPA kernels have it
        return "attention"
    if any(k in n for k in ("fprop", "dgrad", "wgrad", "conv", "implicit_gemm")):
        return "convolution"
    if any(k in n for k in ("gemm", "nvjet", "cutlass", "matmul")):
        return "matmul"
    if "elementwise" in n or "copy" in n or "reduce" in n:
        return "eager elementwise/copy"
    return "other"


def profiled(fn, calls: int, cpu: bool = False, shapes: bool = False):
    """The torch profiler's record of `calls` calls of `fn` (after one unrecorded call): CUDA kernels, and with
    `cpu` the CPU ops too (with `shapes`, their input shapes and strides)."""
    from torch.profiler import ProfilerActivity, profile as tprofile

    fn()
    torch.cuda.synchronize()
    acts = [ProfilerActivity.CUDA] + ([ProfilerActivity.CPU] if cpu else [])
    with tprofile(activities=acts, record_shapes=shapes, acc_events=True) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    return prof


def family_ms(events, calls: int) -> dict[str, float]:
    """Kernel time per call by family, from the profiler's averaged events (`key_averages()`)."""
    fams: dict[str, float] = {}
    for e in events:
        fam = family(e.key) if e.self_device_time_total > 0 else None
        if fam:
            fams[fam] = fams.get(fam, 0.0) + e.self_device_time_total / calls / 1e3
    return fams


def profile(fn, label: str, rows: int = 14, shapes: bool = False) -> None:
    """CUDA time of 3 calls split by kernel family, the top kernels, and (shapes) the CPU ops that launch copies."""
    prof = profiled(fn, 3, cpu=shapes, shapes=shapes)
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0 and family(e.key)]
    fams = family_ms(events, 3)
    total = sum(fams.values())
    out(f"  profile {label}: {total:.1f} ms of CUDA kernels per call")
    for k, v in sorted(fams.items(), key=lambda kv: -kv[1]):
        out(f"    {k:<34}{v:7.2f} ms  {100 * v / total:5.1f}%")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:rows]:
        out(f"    {e.self_device_time_total / 3 / 1e3:7.2f} ms  x{e.count // 3:<4d} {e.key[:120]}")
    if shapes:
        cpu = [e for e in prof.key_averages(group_by_input_shape=True)
               if e.key in ("aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::to")]
        cpu.sort(key=lambda e: -e.device_time_total)
        out("  CPU ops that copy, by input shape (CUDA time of their kernels per 3 calls):")
        for e in cpu[:20]:
            out(f"    {e.key:<18} calls {e.count:4d}  cuda {e.device_time_total / 1e3:8.2f} ms  shapes {e.input_shapes}")


# --- VAE encoder forward + backward -------------------------------------------------------------------------

def vae_variants(prior: DiffusionPrior) -> None:
    images = torch.rand(B, 3, SIZE, SIZE, device="cuda", requires_grad=True)
    gen = torch.Generator(device="cuda").manual_seed(0)
    encoder = prior.vae.encoder

    def fwd_bwd():
        z = prior.encode_images(images, generator=gen)
        z.backward(torch.ones_like(z))
        images.grad = None

    def measure(label: str, setup=None, flags: dict | None = None, dump: bool = False, prof: bool = False):
        if skip(label):
            return
        torch._dynamo.reset()
        prior.vae.encoder = encoder
        restore = {k: getattr(Inductor, k) for k in (flags or {})}
        for k, v in (flags or {}).items():
            setattr(Inductor, k, v)
        if setup:
            setup()
        if dump:
            torch._logging.set_logs(output_code=True)
        prior.vae.encoder = torch.compile(encoder, dynamic=False)
        t0 = time.monotonic()
        fwd_bwd()
        compile_s = time.monotonic() - t0
        if dump:
            torch._logging.set_logs()
        ms = time_ms(fwd_bwd, DEVICE, repeat=10)
        torch.cuda.reset_peak_memory_stats()
        fwd_bwd()
        peak = torch.cuda.max_memory_allocated() / 2**30
        out(f"{label:<58} fwd+bwd {ms:6.1f} ms  peak {peak:5.2f} GiB  (compile {compile_s:.0f} s)")
        if prof:
            profile(fwd_bwd, label, shapes=True)
        for k, v in restore.items():
            setattr(Inductor, k, v)

    out("== VAE encoder fwd+bwd, 4x512², bf16 ==")
    measure("V0 production (contiguous, compiled, bmm attention)", dump=True, prof=True)
    measure("V1 V0 + inductor layout_optimization off", flags={"layout_optimization": False}, prof=True)
    measure("V2 V0 + conv_1x1_as_mm, coordinate descent tuning",
            flags={"conv_1x1_as_mm": True, "coordinate_descent_tuning": True})
    measure("V3 channels-last weights, compiled",
            setup=lambda: prior.vae.to(memory_format=torch.channels_last))
    prior.vae.to(memory_format=torch.contiguous_format)
    measure("V4 V0 + max-autotune convolutions (no CUDA graphs)",
            flags={"max_autotune": True, "max_autotune_conv_backends": "ATEN,TRITON"})
    measure("V5 channels-last + channels-last GroupNorm", setup=lambda: (
        prior.vae.to(memory_format=torch.channels_last), use_channels_last_group_norm(encoder)), prof=True)
    torch._dynamo.reset()
    prior.vae.encoder = encoder


# --- UNet call -----------------------------------------------------------------------------------------------

def unet_variants(prior: DiffusionPrior) -> None:
    unet = prior.unet
    h = prior.latent_size
    emb = torch.randn(2 * B, 77, unet.config.cross_attention_dim, device="cuda")
    xs = {n: torch.randn(n, 4, h, h, device="cuda") for n in (B, 2 * B)}
    ts = {n: torch.full((n,), 400, device="cuda", dtype=torch.long) for n in (B, 2 * B)}
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        prior.predict_noise(xs[B], ts[B], emb[:B])
    tflop = fc.get_total_flops() / 1e12 / B  # per image

    def call(n):
        return lambda: prior.predict_noise(xs[n], ts[n], emb[:n])

    def measure(label: str, setup=None, teardown=None, flags: dict | None = None, prof: bool = False,
                mode: str = "reduce-overhead"):
        if skip(label):
            return
        torch._dynamo.reset()
        restore = {k: getattr(Inductor, k) for k in (flags or {})}
        for k, v in (flags or {}).items():
            setattr(Inductor, k, v)
        if setup:
            setup()
        prior.unet = torch.compile(unet, mode=mode, dynamic=False)
        prior._compiled = True
        t0 = time.monotonic()
        for n in (B, 2 * B):
            for _ in range(3):
                call(n)()
        compile_s = time.monotonic() - t0
        ms = {n: time_ms(call(n), DEVICE, repeat=20) for n in (B, 2 * B)}
        out(f"{label:<58} B {ms[B]:6.2f} ms ({B * tflop / ms[B] * 1e3:4.0f} TFLOP/s)  2B {ms[2 * B]:6.2f} ms "
            f"({2 * B * tflop / ms[2 * B] * 1e3:4.0f} TFLOP/s)  (compile {compile_s:.0f} s)")
        if prof:
            profile(call(B), f"{label} [B]")
        for k, v in restore.items():
            setattr(Inductor, k, v)
        if teardown:
            teardown()
        prior.unet, prior._compiled = unet, False

    def cudnn_attention(on: bool):
        torch.backends.cuda.enable_flash_sdp(not on)
        torch.backends.cuda.enable_mem_efficient_sdp(not on)
        torch.backends.cuda.enable_cudnn_sdp(True)

    out(f"== UNet call, 64² latents, bf16, {tflop:.3f} TFLOP per image ==")
    measure("U0 production (channels-last, reduce-overhead, SDPA)", prof=True)
    measure("U6 channels-last GroupNorm", setup=lambda: use_channels_last_group_norm(unet), prof=True)
    measure("U7 U6 + cuDNN attention", setup=lambda: cudnn_attention(True), teardown=lambda: cudnn_attention(False))
    measure("U8 U6 + fused QKV projections", setup=unet.fuse_qkv_projections, teardown=unet.unfuse_qkv_projections)
    measure("U1 contiguous layout", setup=lambda: unet.to(memory_format=torch.contiguous_format),
            teardown=lambda: unet.to(memory_format=torch.channels_last))
    measure("U2 fused QKV projections", setup=unet.fuse_qkv_projections, teardown=unet.unfuse_qkv_projections)
    measure("U3 conv_1x1_as_mm, coordinate descent, no epilogue fusion",
            flags={"conv_1x1_as_mm": True, "coordinate_descent_tuning": True, "epilogue_fusion": False,
                   "coordinate_descent_check_all_directions": True})
    measure("U4 cuDNN attention", setup=lambda: cudnn_attention(True), teardown=lambda: cudnn_attention(False),
            prof=True)
    measure("U5 max-autotune (Triton templates for mm/conv, CUDA graphs)", mode="max-autotune")


def main() -> None:
    torch.manual_seed(0)
    prior = DiffusionPrior.from_arch("sd21-base", device="cuda", dtype="bf16", seed=0)
    prior.enable_fast_path(compile=False)  # layouts, cuDNN autotuning, VAE attention; compiled per variant here
    out(f"{torch.cuda.get_device_name()} torch {torch.__version__}")
    vae_variants(prior)
    unet_variants(prior)


if __name__ == "__main__":
    sys.exit(main())
