"""Rounds 14-15: inductor's store-or-recompute thresholds and tiling for the VAE encoder (and the UNet).

When a pointwise value feeds several kernels, inductor either stores it (one write, a read per consumer) or lets
each consumer recompute it from its inputs. It stores it when the value reads more than `realize_reads_threshold`
inputs, has more than `realize_opcount_threshold` ops, or has accumulated more than `realize_acc_reads_threshold`
reads. In the encoder's GroupNorm + SiLU backward the stored values are float32 copies of full activations. Each
variant passes its thresholds to `DiffusionPrior.compiled_encoder(options)` (the production encoder: channels-last,
compiled, forward+backward replayed as CUDA graphs), so nothing else is compiled with them. Per variant:
compile + capture seconds; forward+backward back to back (graphed, as the loop runs it); CUDA kernel time by family;
the output's and input gradient's error against the same encoder in float32 (eager), and the gradient's difference
from the first variant; and (`--bandwidth`) inductor's own count of bytes its Triton kernels move.

    python3 bench/encoder_realize.py [--variants R0,R1,R2] [--bandwidth R0,R1] [--unet R0,R1]   (H100, ~8 min)
    python3 bench/encoder_realize.py --variants R1,R6,R7,R8 --bandwidth R6 --unet R0,R1,R8      (round 15)
    python3 bench/encoder_realize.py --device cpu   (no timing: the large buffers the backward stores, at 1x128²)

On the CPU, inductor's CPU rules (it always stores reused values that contain a sigmoid, and uses larger
thresholds) are replaced by the GPU's, so the count shows what the CUDA build would store.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import re
import sys
import tempfile
import time

import torch

from lucidkit.bench.speed import time_ms
from lucidkit.prior import RECOMPUTE_OPTIONS, DiffusionPrior

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profile_levers import family_ms, profiled  # noqa: E402

GPU_DEFAULTS = {"realize_reads_threshold": 4, "realize_opcount_threshold": 30, "realize_acc_reads_threshold": 8}
VARIANTS = {
    "R0": ("inductor's defaults (round 13 production)", {}),
    "R1": ("reads 16, opcount 100, acc-reads 16 (production)", RECOMPUTE_OPTIONS),
    "R2": ("reads 16, opcount 100", {"realize_reads_threshold": 16, "realize_opcount_threshold": 100}),
    "R3": ("R1 + coordinate-descent tuning", {**RECOMPUTE_OPTIONS, "coordinate_descent_tuning": True}),
    "R4": ("reads 32, opcount 200, acc-reads 32",
           {"realize_reads_threshold": 32, "realize_opcount_threshold": 200, "realize_acc_reads_threshold": 32}),
    "R5": ("acc-reads 16 only", {"realize_acc_reads_threshold": 16}),
    # round 15: how the recomputing kernels are tiled
    "R6": ("R1 + 2-D tiling of pointwise kernels", {**RECOMPUTE_OPTIONS, "triton.prefer_nd_tiling": True}),
    "R7": ("R6 + tiled reductions", {**RECOMPUTE_OPTIONS, "triton.prefer_nd_tiling": True,
                                     "triton.tile_reductions": True}),
    "R8": ("R1 + aggressive fusion", {**RECOMPUTE_OPTIONS, "aggressive_fusion": True}),
}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def fwd_bwd(encoder, x: torch.Tensor, dy: torch.Tensor):
    xi = x.detach().clone().requires_grad_(True)
    out = encoder(xi)
    grad, = torch.autograd.grad(out, xi, dy.to(out.dtype))
    return out.detach(), grad


def cpu_buffer_count(prior: DiffusionPrior, keys: list[str]) -> None:
    """Compile the encoder's forward+backward on the CPU per variant and sum the large buffers it allocates."""
    import torch._inductor.ir as ir

    ir.is_cpu = lambda node: False  # the GPU's realisation rules (see the module docstring)
    torch._inductor.config.fx_graph_cache = False
    x = torch.randn(1, 3, 128, 128, dtype=prior.dtype).contiguous(memory_format=torch.channels_last)
    dy = torch.randn(1, 8, 16, 16)
    alloc = re.compile(r"empty_strided_cpu\(\(([0-9, ]*)\), \([0-9, ]*\), torch\.(\w+)\)")
    for key in keys:
        label, options = VARIANTS[key]
        with tempfile.TemporaryDirectory() as cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
            torch._dynamo.reset()
            encoder = prior.compiled_encoder({**GPU_DEFAULTS, **options}).module  # no CUDA graphs on the CPU
            fwd_bwd(encoder, x, dy)
            codes = sorted((p for p in glob.glob(f"{cache}/**/*.py", recursive=True) if "def call(" in open(p).read()),
                           key=os.path.getmtime)
            for name, path in zip(("forward", "backward"), codes[-2:]):
                sizes: dict[str, float] = {}
                for shape, dtype in alloc.findall(open(path).read()):
                    numel = math.prod(int(d) for d in shape.replace(" ", "").split(",") if d)
                    if numel >= 10_000:  # activations, not statistics
                        mb = numel * getattr(torch, dtype).itemsize / 1e6
                        sizes[dtype] = sizes.get(dtype, 0.0) + mb
                print(f"{key} {label:<36} {name:<8} large buffers: "
                      + (", ".join(f"{v:.1f} MB {k}" for k, v in sizes.items()) or "none"), flush=True)


def bandwidth(prior: DiffusionPrior, options: dict, x: torch.Tensor, dy: torch.Tensor, rows: int = 6) -> str:
    """Inductor's per-kernel benchmark of one fresh compilation: Triton kernels, their ms alone, the bytes moved."""
    from torch._inductor.runtime import triton_heuristics

    torch._dynamo.reset()
    triton_heuristics.collected_calls.clear()
    with torch._inductor.config.patch(profile_bandwidth=True):
        fwd_bwd(prior.compiled_encoder(options).module, x, dy)
    torch.cuda.synchronize()
    calls = list(triton_heuristics.collected_calls)
    ms, gb = sum(c[0] for c in calls), sum(c[1] for c in calls)
    lines = [f"   Triton kernels alone: {len(calls)} kernels, {ms:.2f} ms, {gb:.2f} GB, {gb / ms:.2f} TB/s"]
    for k_ms, k_gb, rate, name in sorted(calls, key=lambda c: -c[0])[:rows]:
        lines.append(f"     {k_ms:6.3f} ms  {k_gb:6.3f} GB  {rate / 1e3:5.2f} TB/s  {name[:80]}")
    return "\n".join(lines)


def encoder_variants(prior: DiffusionPrior, keys: list[str], bandwidth_keys: list[str]) -> None:
    g = torch.Generator(prior.device).manual_seed(0)
    x = torch.rand(4, 3, prior.resolution, prior.resolution, device=prior.device, generator=g)
    x = (2 * x - 1).to(prior.dtype).contiguous(memory_format=torch.channels_last)  # as latent_posterior feeds it
    dy = torch.randn(4, 2 * prior.latent_channels, prior.latent_size, prior.latent_size, device=prior.device,
                     generator=g)
    eager = prior.channels_last_encoder()
    reference = fwd_bwd(eager.float(), x.float(), dy)  # float32, eager
    eager.to(prior.dtype)
    first = None
    for key in keys:
        label, options = VARIANTS[key]
        torch._dynamo.reset()
        encoder = prior.compiled_encoder(options)
        t0 = time.perf_counter()
        out, grad = fwd_bwd(encoder, x, dy)  # compiles, warms up and captures the CUDA graphs
        torch.cuda.synchronize()
        warm = time.perf_counter() - t0
        out, grad = (t.clone() for t in fwd_bwd(encoder, x, dy))  # a replay (its outputs live in the graph's buffers)
        assert encoder.replays >= 1, "the encoder did not replay its CUDA graphs"
        first = grad if first is None else first
        ms = time_ms(lambda: fwd_bwd(encoder, x, dy), prior.device, repeat=20)
        fams = family_ms(profiled(lambda: fwd_bwd(encoder, x, dy), 3).key_averages(), 3)
        split = ", ".join(f"{k} {v:.2f}" for k, v in sorted(fams.items(), key=lambda kv: -kv[1]))
        print(f"{key} {label:<36} encoder fwd+bwd {ms:6.2f} ms (graphed, back to back); compile+capture {warm:.0f} s\n"
              f"   kernels per call (ms): {split}\n"
              f"   error vs float32: output {rel(out, reference[0]):.2e}, input gradient {rel(grad, reference[1]):.2e};"
              f" gradient vs {keys[0]}: {rel(grad, first):.2e}", flush=True)
        del encoder
        if key in bandwidth_keys:
            print(bandwidth(prior, options, x, dy), flush=True)


def unet_variants(prior: DiffusionPrior, keys: list[str], batch: int = 4) -> None:
    """The UNet's batch-B call compiled as production compiles it (CUDA graphs: wall time is GPU time) with each
    variant's options; its output's difference from the first variant's."""
    g = torch.Generator(prior.device).manual_seed(0)
    h = prior.latent_size
    z = torch.randn(batch, prior.latent_channels, h, h, device=prior.device, generator=g, dtype=prior.dtype)
    z = z.contiguous(memory_format=torch.channels_last)
    t = torch.full((batch,), 500, device=prior.device)
    emb = torch.randn(batch, 77, prior.text_encoder.config.hidden_size, device=prior.device, dtype=prior.dtype)
    first = None
    for key in keys:
        label, options = VARIANTS[key]
        torch._dynamo.reset()
        compiled = prior.compiled_unet(options)
        call = lambda: compiled(z, t, encoder_hidden_states=emb).sample
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(3):  # compile, warm up, record the CUDA graph
                call()
            torch.cuda.synchronize()
            warm = time.perf_counter() - t0
            out = call().clone()  # a replay's output lives in the graph's memory pool
            ms = time_ms(call, prior.device, repeat=30)
            fams = family_ms(profiled(call, 3).key_averages(), 3)
        first = out if first is None else first
        split = ", ".join(f"{k} {v:.2f}" for k, v in sorted(fams.items(), key=lambda kv: -kv[1]))
        print(f"{key} {label:<36} UNet B={batch} {ms:6.2f} ms (compiled, CUDA graphs); compile+capture {warm:.0f} s;"
              f" output vs {keys[0]}: {rel(out, first):.2e}\n   kernels per call (ms): {split}", flush=True)
        del compiled


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--variants", default="R0,R1,R2")
    ap.add_argument("--bandwidth", default="R0,R1", help="variants whose Triton bytes are counted (a compile each)")
    ap.add_argument("--unet", default="R0,R1", help="variants tried on the UNet's batch-B call ('' to skip)")
    args = ap.parse_args()
    torch.compiler.config.force_disable_caches = True  # every variant compiles from scratch
    if args.device == "cpu":
        prior = DiffusionPrior.from_arch("sd21-base", device="cpu")  # the prior refuses bf16 on the CPU,
        prior.vae.to(torch.bfloat16)  # but the buffers to count are those of the GPU's bf16 encoder
        prior.dtype = torch.bfloat16
        return cpu_buffer_count(prior, args.variants.split(","))
    prior = DiffusionPrior.from_arch("sd21-base", device="cuda", dtype="bf16")
    prior.enable_fast_path(compile=False)  # channels-last UNet, cuDNN autotuning, bmm VAE attention
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__}", flush=True)
    if args.variants:
        encoder_variants(prior, args.variants.split(","), args.bandwidth.split(","))
    if args.unet:
        unet_variants(prior, args.unet.split(","))


if __name__ == "__main__":
    main()
