"""Where the host and the GPU spend an update of the production loop, and levers timed in one process.

The `fast` case of `bench speed` (SD 2.1-base shapes, random weights, bf16, B = 4, 512², 100k Gaussians) is built
and compiled once; then:
  1. ms per update, early and late, timed as `bench speed` times them (no host sync inside the window), every
     variant from the same generator state, so all see the same timesteps and inversion counts;
  2. the host's cost of each part of a late update when it never waits for the GPU: the GPU is synchronised before
     each part, so what is timed is the work of queueing it. If these add up to about the update's wall time, the
     loop is bound by the host, not by the GPU;
  3. the GPU's side: a CUDA-only profile of late updates (busy time against wall time, kernel time by family),
     and the places of the idle gaps: which launch (op and source line) ends each one;
  4. the VAE encoder forward+backward alone, compiled and as production replays it (CUDA graphs,
     `lucidkit.graphed.GraphedModule`), timed and profiled; the graphed encoder checked against the compiled one
     with UNet calls between its forward and backward; its Triton kernels' bandwidth (inductor's profiler);
  5. levers and controls, each timed in the loop: without the encoder's CUDA graphs; the image-space regularisers
     eager instead of compiled; the UNet compiled once for every batch size (dynamic batch) instead of once per
     size; the UNet compiled with inductor freezing (its parameters as constants: fewer guards and cudagraph
     input checks). Every compilation runs with inductor's caches off, so warm-up seconds are those of a fresh
     machine. (Rounds 6-7's pinned-copy control and V6 GroupNorm are in git history; results in
     bench/results/loop_levers_7.txt.)

    python3 bench/loop_levers.py [--arch tiny --device cpu]   (CPU: a smoke test of the script only)
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import defaultdict

import torch

import lucidkit.optimize as loop
from lucidkit.bench.speed import _sync, build, loop_ms, time_ms


class HostCost:
    """Wraps functions so that each call first waits for the GPU, then times only the call's own host work."""

    def __init__(self, device):
        self.device, self.ms, self.calls, self.wait_ms = device, defaultdict(float), defaultdict(int), 0.0

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            _sync(self.device)
            t1 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.wait_ms += (t1 - t0) * 1e3
            self.ms[name] += (time.perf_counter() - t1) * 1e3
            self.calls[name] += 1
            return out
        return timed


def host_cost(prior, state, sampler, objective, cfg, start: int, steps: int) -> str:
    device = prior.device
    cost = HostCost(device)
    saved = {"render_state": loop.render_state, "densify_and_prune": loop.densify_and_prune,
             "backward": torch.Tensor.backward}
    loop.render_state = cost.wrap("render (gsplat forward, incl. its tile-count sync)", loop.render_state)
    loop.densify_and_prune = cost.wrap("densification statistics", loop.densify_and_prune)
    torch.Tensor.backward = cost.wrap("backward (VAE encoder, render, losses)", torch.Tensor.backward)
    prior.latent_posterior = cost.wrap("VAE encoder forward + posterior", prior.latent_posterior)
    prior.predict_noise = cost.wrap("UNet call (predict_noise)", prior.predict_noise)
    steps_saved = {}
    for name, opt in state.optimizers.items():
        steps_saved[name] = opt.step
        opt.step = cost.wrap("Adam steps (6 optimizers)", opt.step)
    try:
        state.step = start
        _sync(device)
        t0 = time.perf_counter()
        loop.optimize(state, sampler, objective, dataclasses.replace(cfg.loop, steps=start + steps), cfg.optim)
        _sync(device)
        wall = (time.perf_counter() - t0) * 1e3
    finally:
        loop.render_state, loop.densify_and_prune = saved["render_state"], saved["densify_and_prune"]
        torch.Tensor.backward = saved["backward"]
        del prior.latent_posterior, prior.predict_noise  # back to the class's methods
        for name, opt in state.optimizers.items():
            opt.step = steps_saved[name]
    parts = sum(cost.ms.values())
    rest = wall - parts - cost.wait_ms
    lines = [f"host cost of a late update (GPU drained before each part; {steps} updates from step {start}):"]
    for name, ms in sorted(cost.ms.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<52}{ms / steps:7.2f} ms  ({cost.calls[name] / steps:.2f} calls)")
    lines.append(f"  {'rest (cameras, ISM and loss arithmetic, lrs, embeddings)':<52}{rest / steps:7.2f} ms")
    lines.append(f"  {'total host work':<52}{(parts + rest) / steps:7.2f} ms per update")
    return "\n".join(lines)


def gpu_side(state, sampler, objective, cfg, device, start: int, steps: int) -> str:
    """A CUDA-only profile of `steps` loop updates: GPU busy time (union of kernels) against wall time, and kernel
    time by family (the CUDA-only profiler adds little host work, so the loop runs close to its normal pace)."""
    from torch.profiler import ProfilerActivity, profile

    from profile_levers import family

    state.step = start
    loop.optimize(state, sampler, objective, dataclasses.replace(cfg.loop, steps=start + 2), cfg.optim)
    _sync(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        loop.optimize(state, sampler, objective, dataclasses.replace(cfg.loop, steps=start + 2 + steps), cfg.optim)
        _sync(device)
        wall = (time.perf_counter() - t0) * 1e3 / steps
    kernels = sorted((e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                     if e.device_type == torch.autograd.DeviceType.CUDA)
    busy, end, fams, gaps = 0.0, None, defaultdict(float), []
    for i, (s, e, name) in enumerate(kernels):
        if end is not None and s > end:
            gaps.append((s - end, i))
        busy += max(0.0, e - max(s, end if end is not None else s))
        end = e if end is None else max(end, e)
        fams[family(name) or "other"] += (e - s) / 1e3 / steps
    idle = sum(g for g, _ in gaps if g > 20)
    lines = [f"GPU side of a late update ({steps} updates, CUDA-only profile): wall {wall:.1f} ms, "
             f"GPU busy {busy / 1e3 / steps:.1f} ms, idle gaps over 20 µs {idle / 1e3 / steps:.1f} ms"]
    lines += [f"  {k:<34}{v:7.2f} ms" for k, v in sorted(fams.items(), key=lambda kv: -kv[1])]
    lines.append("  longest idle gaps (kernel before -> kernel after):")
    for g, i in sorted(gaps, reverse=True)[:14]:
        lines.append(f"    {g / 1e3:6.2f} ms  {kernels[i - 1][2][:60]}  ->  {kernels[i][2][:60]}")
    return "\n".join(lines)


def sync_sites(state, sampler, objective, cfg, device, start: int, steps: int) -> str:
    """Where a loop update makes the host wait for the GPU: torch's sync debug mode warns at every synchronising
    call; each warning's Python stack (lucidkit and gsplat frames) is counted."""
    import traceback
    import warnings

    sites = defaultdict(int)
    show = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" in str(message):
            frames = [f"{f.filename.rsplit('/', 2)[-2]}/{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}"
                      for f in traceback.extract_stack()[:-1] if "lucidkit" in f.filename or "gsplat" in f.filename]
            sites[" <- ".join(reversed(frames[-4:]))] += 1

    state.step = start
    _sync(device)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            loop.optimize(state, sampler, objective, dataclasses.replace(cfg.loop, steps=start + steps), cfg.optim)
        finally:
            torch.cuda.set_sync_debug_mode(0)
            warnings.showwarning = show
    lines = [f"synchronising calls in {steps} late updates (torch.cuda.set_sync_debug_mode):"]
    lines += [f"  {n / steps:5.2f} per update  {site}" for site, n in sorted(sites.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def encoder_input(prior, generator: torch.Generator) -> torch.Tensor:
    """Images [4, 3, H, W] as `latent_posterior` hands them to the encoder (the prior's dtype and layout)."""
    x = torch.rand(4, 3, prior.resolution, prior.resolution, device=prior.device, generator=generator)
    return x.to(prior.dtype).contiguous(memory_format=prior._vae_layout)


def encoder_alone(prior, encoder, label: str) -> float:
    """The VAE encoder's forward+backward at the loop's input signature: back-to-back wall time, and its kernels."""
    from profile_levers import profile

    x = encoder_input(prior, torch.Generator(prior.device).manual_seed(0)).requires_grad_(True)

    def fwd_bwd():
        out = encoder(x)
        grad, = torch.autograd.grad(out, x, torch.ones_like(out))
        return grad

    ms = time_ms(fwd_bwd, prior.device)
    print(f"{label:<44} encoder fwd+bwd back to back {ms:6.1f} ms", flush=True)
    profile(fwd_bwd, label, rows=10)
    return ms


def check_graphed_encoder(prior, guidance, graphed) -> str:
    """The graphed encoder against the compiled one on the same input, with UNet calls between forward and
    backward (as in the loop); returns a one-line report."""
    compiled = graphed.module
    g = torch.Generator(prior.device).manual_seed(0)
    x = encoder_input(prior, g)
    h = prior.latent_size
    z = torch.randn(4, prior.latent_channels, h, h, device=prior.device, generator=g)
    emb = guidance.e_empty.expand(4, *guidance.e_empty.shape)
    results = []
    for enc in (compiled, graphed, graphed):  # the second graphed call is a replay
        xi = x.clone().requires_grad_(True)
        out = enc(xi)
        for _ in range(3):
            prior.predict_noise(z, 500, emb)
        grad, = torch.autograd.grad(out.float().square().sum(), xi)
        results.append((out.detach().float(), grad.float()))
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    errs = [(rel(o, results[0][0]), rel(gr, results[0][1])) for o, gr in results[1:]]
    return ("graphed encoder vs compiled (relative error of output, input grad), capture then replay: "
            + ", ".join(f"({a:.1e}, {b:.1e})" for a, b in errs))


def gap_sites(state, sampler, objective, cfg, device, start: int, steps: int) -> str:
    """Where the GPU idles: a profile with the CPU side and Python stacks, each long idle gap named by the source
    line whose launch ends it (the kernel after the gap, linked to its CPU op). Profiling the CPU slows the host,
    so gaps are longer than in an unprofiled loop; their places are what this is for."""
    from torch.profiler import ProfilerActivity, profile

    state.step = start
    loop.optimize(state, sampler, objective, dataclasses.replace(cfg.loop, steps=start + 2), cfg.optim)
    _sync(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], with_stack=True) as prof:
        loop.optimize(state, sampler, objective, dataclasses.replace(cfg.loop, steps=start + 2 + steps), cfg.optim)
        _sync(device)
    # the raw profiler events: a kernel's linked correlation id names the CPU op that launched it
    events = prof.profiler.kineto_results.events()
    cuda = torch.autograd.DeviceType.CUDA
    ops = {e.correlation_id(): e for e in events if e.device_type() != cuda}
    kernels = sorted((e for e in events if e.device_type() == cuda), key=lambda e: e.start_ns())
    sites, end = defaultdict(lambda: [0.0, 0]), None
    for k in kernels:
        if end is not None and k.start_ns() - end > 100_000:  # ns
            op = ops.get(k.linked_correlation_id())
            frames = [f for f in (op.stack() if op is not None else []) if "lucidkit" in f or "gsplat" in f][:3]
            site = f"{op.name() if op is not None else '?'} <- " + " <- ".join(f.rsplit("/", 1)[-1] for f in frames)
            sites[site][0] += (k.start_ns() - end) / 1e6 / steps
            sites[site][1] += 1
        end = k.start_ns() + k.duration_ns() if end is None else max(end, k.start_ns() + k.duration_ns())
    lines = [f"idle gaps over 0.1 ms by the launch that ends them ({steps} late updates, CPU+CUDA profile):"]
    for site, (ms, n) in sorted(sites.items(), key=lambda kv: -kv[1][0])[:10]:
        lines.append(f"  {ms:6.2f} ms/update  x{n / steps:4.1f}  {site[:150]}")
    return "\n".join(lines)


def encoder_bandwidth(prior) -> str:
    """The production encoder's Triton kernels, each benchmarked alone by inductor, with the bytes they move (an
    H100 moves ~3.35 TB/s at best, ~2.5-3 TB/s in practice); see bench/encoder_realize.py."""
    from encoder_realize import bandwidth

    from lucidkit.prior import RECOMPUTE_OPTIONS

    x = encoder_input(prior, torch.Generator(prior.device).manual_seed(0))
    h = prior.latent_size
    dy = torch.ones(4, 2 * prior.latent_channels, h, h, device=prior.device)
    return bandwidth(prior, RECOMPUTE_OPTIONS, x, dy, rows=16)


class AnyBatch(torch.nn.Module):
    """The UNet compiled once for every batch size: its inputs' batch dimension is marked dynamic."""

    def __init__(self, unet):
        super().__init__()
        self.compiled = torch.compile(unet, mode="reduce-overhead")
        self.config = unet.config  # what the prior reads of its UNet

    def forward(self, x, t, encoder_hidden_states, **kwargs):
        for v in (x, t, encoder_hidden_states):
            torch._dynamo.maybe_mark_dynamic(v, 0)
        return self.compiled(x, t, encoder_hidden_states=encoder_hidden_states, **kwargs)


def attempt(part, label: str) -> None:
    """Print what `part()` returns (if anything), or why it failed, and go on with the other sections."""
    try:
        report = part()
        if report is not None:
            print(report, flush=True)
    except Exception as err:  # noqa: BLE001 - a failed section must not lose the others' measurements
        print(f"{label}: failed: {type(err).__name__}: {err}", flush=True)


def timed_loop(label, state, sampler, objective, cfg, device, steps, generator_state) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ms = []
    for start in (0, 3500):
        state.generator.set_state(generator_state)  # the same timesteps and inversion counts for every variant
        ms.append(loop_ms(state, sampler, objective, cfg, start, steps, device))
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    print(f"{label:<44} early {ms[0][0]:6.1f} ms   late {ms[1][0]:6.1f} ms   peak {peak:5.2f} GiB   "
          f"(warm-up {ms[0][1]:.0f} s)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="sd21-base")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--parts", default="loop,host,syncs,gpu,dynamic,static,where,encoder,graphed,regs,anatomy,freeze",
                    help="comma-separated sections to run (all by default)")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    # every compilation from scratch, as on a fresh machine: the warm-up seconds of the variants compare
    torch.compiler.config.force_disable_caches = True
    size = 512 if args.arch != "tiny" else 64
    prior, guidance, cfg, state, objective, sampler = build(
        args.arch, device, "bf16" if cuda else "fp32", 4, size, 100_000 if cuda else 2000,
        perp_neg=False, fast=cuda, low_memory=False)
    gen0 = state.generator.get_state()
    run = lambda label: timed_loop(label, state, sampler, objective, cfg, device, args.steps, gen0)

    want = set(args.parts.split(","))
    if "loop" in want:
        run("production (fast case)")
    if "host" in want:
        print(host_cost(prior, state, sampler, objective, cfg, 3500, 6), flush=True)
    if not cuda:
        return
    if "syncs" in want:
        print(sync_sites(state, sampler, objective, cfg, device, 3500, 3), flush=True)
    if "gpu" in want:
        print(gpu_side(state, sampler, objective, cfg, device, 3500, 5), flush=True)
    graphed = prior.vae.encoder  # production: the compiled encoder replayed as CUDA graphs (GraphedModule)
    compiled = graphed.module
    if "encoder" in want:
        encoder_alone(prior, compiled, "V5 encoder, compiled")
        encoder_alone(prior, graphed, "V7 encoder as CUDA graphs (production)")
    if "graphed" in want:  # the control: round 6's production, without the encoder's CUDA graphs
        print(check_graphed_encoder(prior, guidance, graphed), flush=True)
        prior.vae.encoder = compiled
        run("without the encoder's CUDA graphs")
        prior.vae.encoder = graphed
    if "dynamic" in want:  # one UNet compilation for every batch size (B, 2B) instead of one per size
        unet = prior.unet._orig_mod
        torch._dynamo.reset()
        prior.unet = AnyBatch(unet)
        attempt(lambda: run("UNet compiled once with a dynamic batch size"), "dynamic batch")
        prior.unet = unet  # the eager UNet back in place of AnyBatch, then production's compilation again
        prior.unet = prior.compiled_unet()
        if "static" in want:  # the control: production's compilation, one per batch size, also from scratch
            torch._dynamo.reset()
            run("UNet compiled per batch size (production, control)")
    if "where" in want:
        attempt(lambda: gap_sites(state, sampler, objective, cfg, device, 3500, 3), "gap sites")
    if "regs" in want:  # the control: the image-space regularisers eager (production compiles them)
        from lucidkit.optimize import image_regularizers

        compiled_terms, objective.image_terms = objective.image_terms, image_regularizers
        run("regularisers eager (round 8's production)")
        objective.image_terms = compiled_terms
    if "anatomy" in want:
        attempt(lambda: encoder_bandwidth(prior), "encoder bandwidth")
    if "freeze" in want:  # the UNet's host cost (~3 ms a call): its ~700 parameters as inductor constants
        def freeze():
            torch._dynamo.reset()  # a config change alone would reuse the compiled code
            torch._inductor.config.freezing = True
            prior.unet = prior.compiled_unet()
            run("UNet compiled with inductor freezing")
            if "host" in want:
                print(host_cost(prior, state, sampler, objective, cfg, 3500, 6), flush=True)

        attempt(freeze, "freezing")

if __name__ == "__main__":
    main()
