"""`lucidkit bench speed`: the cost of one ISM update at true scale (random weights: speed and memory only).

Measured on the production path — the same `optimize()` loop, `ScoreDistillation`, `DiffusionPrior` and renderer
that `lucidkit generate` runs — with the recipe's shapes (SD 2.1-base, B = 4 views of 512², 100k Gaussians):
  * ms per update over real loop steps (early steps: t up to 980, so up to 5 inversion calls; mid-anneal steps:
    t up to 740; late steps: t < 500 after annealing), timed like a real run (no host sync between updates), the
    mean over the recipe and its projected time, peak allocated GPU memory, and the start-up time (compilation,
    CUDA graphs, autotuning: what the first pass over the early steps cost beyond as many steady updates);
  * a breakdown timed on the same functions: render fwd+bwd, VAE encode fwd and bwd, one inversion-sized UNet
    call (batch B), the CFG call (batch 2B, or 4B with Perp-Neg), a densification refine step; from them a late
    update is split into its parts, and what they leave unexplained is reported as "other";
  * a naive path in the same process, written like the release: fp16, eager, and the release's habits of
    emptying the CUDA cache and synchronising after every UNet call.
Achieved TFLOP/s is counted from the analytical FLOPs of the UNet and VAE passes (fvcore-style counts from
`torch.utils.flop_counter` on one pass of each) against a measured bf16 matrix rate.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from lucidkit.bench.timing import count_flops, sync, time_ms
from lucidkit.prior.modes import GRAPHED_UNET_MODES


def matmul_tflops(device, n: int = 8192, dtype=torch.bfloat16) -> float:
    """Measured dense matrix rate (the ceiling the achieved rate is compared with)."""
    if device.type != "cuda":
        n = 512
        dtype = torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    ms = time_ms(lambda: a @ b, device, repeat=10)
    return 2 * n**3 / (ms * 1e-3) / 1e12


def build(arch: str, device, precision: str, batch: int, resolution: int, n_gaussians: int, perp_neg: bool,
          fast: bool, low_memory: bool, naive: bool = False, seed: int = 0):
    """The prior (random weights), guidance, state, sampler and objective as `generate.run` builds them.
    fast = channels-last + torch.compile (CUDA graphs), or a `prior.compile` mode name ("graphs", "regional");
    eager = channels-last only (generate's default);
    naive = neither (the release's eager fp16)."""
    from lucidkit.cameras import OrbitSampler
    from lucidkit.generate import GenerateConfig, resolve_config
    from lucidkit.guidance import ScoreDistillation
    from lucidkit.objectives import RenderObjective
    from lucidkit.optimize import new_state
    from lucidkit.prior.random_weights import random_prior
    from lucidkit.splat.densify import make_strategy
    from lucidkit.splat.init import init_gaussians

    prior = random_prior(arch, device=device, dtype=precision, seed=seed)
    if not naive:
        prior.enable_fast_path(compile=fast)
    if low_memory:
        prior.enable_low_memory()
    cfg: GenerateConfig = resolve_config("default", {
        "prompt": "a DSLR photo of a hamburger",
        "loop": {"batch_size": batch, "resolution": resolution},
        "guidance": {"perp_neg": perp_neg},
        "init": {"n_points": n_gaussians},
    })
    guidance = ScoreDistillation(prior, cfg.prompt, cfg.guidance)
    if low_memory:
        prior.offload_text_encoder()
    strategy = make_strategy(cfg.densify, resolution, resolution)
    gen = torch.Generator().manual_seed(seed)
    state = new_state(init_gaussians(cfg.init, generator=gen, device=device), cfg.optim, strategy, seed)
    objective = RenderObjective(guidance, cfg.regularizers, state.generator)
    sampler = OrbitSampler(cfg.camera, resolution, resolution)
    return prior, guidance, cfg, state, objective, sampler


def loop_ms(state, sampler, objective, cfg, start_step: int, steps: int, device, warmup: int = 3) -> tuple[float, float]:
    """Mean ms per update of the real loop from `start_step` over `steps` updates, after `warmup` untimed updates
    (compilation, CUDA-graph recording and cuDNN autotuning happen there), and the warm-up's wall time in s.
    The device is synchronised only at the window's ends: like a real run, whose progress display reads the loss
    at most twice a second, the CPU queues the next update while the GPU works."""
    from lucidkit.optimize import optimize

    marks = {}

    def mark(s, logs):
        if s.step == start_step + warmup:
            sync(device)
            marks["warm"] = time.perf_counter()

    state.step = start_step
    loop_cfg = dataclasses.replace(cfg.loop, steps=start_step + warmup + steps)
    sync(device)
    t0 = time.perf_counter()
    optimize(state, sampler, objective, loop_cfg, cfg.optim, [mark])
    sync(device)
    return (time.perf_counter() - marks["warm"]) * 1e3 / steps, marks["warm"] - t0


def breakdown(prior, guidance, state, sampler, cfg, device, perp_neg: bool) -> dict:
    """Median ms of the pieces of one update, timed on the production functions."""
    from lucidkit.optimize import sample_backgrounds
    from lucidkit.splat.render import render_state

    B, size = cfg.loop.batch_size, cfg.loop.resolution
    gen = torch.Generator().manual_seed(1)
    cams = sampler.sample(B, 2000, gen)
    bg = sample_backgrounds(B, 0.66, gen)

    def render_fb():
        out = render_state(state.splats, cams, bg)
        out.rgb.sum().backward()
        for p in state.splats.values():
            p.grad = None

    images = torch.rand(B, 3, size, size, device=device, requires_grad=True)

    def vae_fwd():  # the latents are dropped, as a graphed encoder may replay only once nothing awaits a backward
        prior.encode_images(images, generator=gen)

    def vae_bwd():
        z = prior.encode_images(images, generator=gen)
        z.backward(torch.ones_like(z))

    h = prior.latent_size
    x = torch.randn(B, prior.latent_channels, h, h, device=device)
    emb = guidance.positive_embeddings(cams.azimuth_deg)
    n_cfg = 4 if perp_neg else 2
    ms = {
        "render_fwd_bwd": time_ms(render_fb, device),
        "vae_encode_fwd": time_ms(vae_fwd, device),
    }
    ms["vae_encode_bwd"] = max(time_ms(vae_bwd, device) - ms["vae_encode_fwd"], 0.0)
    ms["unet_call_B"] = time_ms(lambda: guidance._eps(x, 400, emb, None), device)
    ms[f"unet_call_{n_cfg}B"] = time_ms(lambda: guidance._eps(x.repeat(n_cfg, 1, 1, 1), 400, emb.repeat(n_cfg, 1, 1), None),
                                        device)
    # densification: one refine step (every 100 updates until 3000) amortised over its interval
    strategy = state.strategy
    out = render_state(state.splats, cams, bg)
    strategy.step_pre_backward(state.splats, state.optimizers, state.strategy_state, 200, out.info)
    out.rgb.sum().backward()
    sync(device)
    t0 = time.perf_counter()
    strategy.step_post_backward(state.splats, state.optimizers, state.strategy_state, 200, out.info, packed=False)
    sync(device)
    ms["densify_refine_step"] = (time.perf_counter() - t0) * 1e3
    for p in state.splats.values():
        p.grad = None
    return ms


def late_update_parts(result: dict, cfg, perp_neg: bool, inversion_calls: float) -> dict:
    """A late update (t < 500) split into its parts, from the timed pieces: render, VAE encode forward and
    backward, the mean number of inversion UNet calls, the e_s call, the CFG call, densification (one refine step
    every `refine_every` updates while densifying, spread over the whole recipe) and what is left ("other":
    embeddings, the ISM arithmetic, losses, the optimiser step)."""
    b = result["breakdown_ms"]
    d = cfg.densify
    refines = max(0, (min(d.stop_iter, cfg.loop.steps) - d.start_iter - 1) // d.refine_every)
    parts = {
        "render_fwd_bwd": b["render_fwd_bwd"],
        "vae_encode_fwd": b["vae_encode_fwd"],
        "vae_encode_bwd": b["vae_encode_bwd"],
        f"inversion_unet_x{inversion_calls:.2f}": inversion_calls * b["unet_call_B"],
        "target_unet_e_s": b["unet_call_B"],
        "cfg_unet": b[f"unet_call_{4 if perp_neg else 2}B"],
        "densify_amortised": b["densify_refine_step"] * refines / cfg.loop.steps,
    }
    parts["other"] = result["ms_per_update_late"] - sum(parts.values())
    return parts


def update_flops(prior, guidance, cfg, perp_neg: bool, inversion_calls: float) -> tuple[float, float, float]:
    """FLOPs of one update: UNet passes (inversion + e_s + CFG) and the VAE encoder forward + backward (≈ 3×)."""
    B, size, h = cfg.loop.batch_size, cfg.loop.resolution, prior.latent_size
    device = prior.device
    x = torch.randn(1, prior.latent_channels, h, h, device=device)
    emb = guidance.e_plain[None]
    unet_one = count_flops(lambda: prior.predict_noise(x, torch.tensor([400], device=device), emb))
    img = torch.rand(1, 3, size, size, device=device)
    with torch.no_grad():
        vae_one = count_flops(lambda: prior.encode_images(img))
    n_cfg = 4 if perp_neg else 2
    unet_passes = B * (inversion_calls + 1 + n_cfg)
    return unet_passes * unet_one + 3 * B * vae_one, unet_one, vae_one


def expected_inversion_calls(cfg, step: int, samples: int = 2000) -> float:
    """Mean number of inversion UNet calls the schedule implies at `step` (Monte Carlo over the sampler)."""
    from lucidkit.guidance.schedules import inversion_timesteps, sample_interval

    g = torch.Generator().manual_seed(0)
    c = cfg.guidance
    total = 0
    for _ in range(samples):
        iv = sample_interval(step, g, t_min=c.t_min, t_max_start=c.t_max_start, t_max_end=c.t_max_end,
                             delta_t=c.delta_t, delta_t_start=c.delta_t_start, anneal_steps=c.anneal_steps)
        total += len(inversion_timesteps(iv.s, 1, c.xs_delta_t, c.xs_inv_steps)) - 1
    return total / samples


def run_case(name, arch, device, precision, batch, resolution, n_gaussians, perp_neg, fast, low_memory, steps,
             release_habits=False, with_breakdown=True, peak_rate=None, builder=None, extend=None) -> dict:
    """One case; `builder` replaces `build` and `extend(result, prior, guidance, sampler, cfg, objective, device,
    perp_neg, peak_rate)` adds a case's own pieces (the avatar cases: lucidkit/bench/speed_avatar.py)."""
    torch._dynamo.reset()  # each case compiles its own prior; earlier cases must not use up the recompile budget
    prior, guidance, cfg, state, objective, sampler = (builder or build)(
        arch, device, precision, batch, resolution, n_gaussians, perp_neg, fast, low_memory, naive=release_habits)
    if device.type == "cuda":  # peak memory of the run itself (random-weight models are built in fp32 first)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    if release_habits:
        _add_release_habits(prior)
    result = {"case": name, "arch": arch, "precision": precision, "fast_path": fast, "low_memory": low_memory,
              "perp_neg": perp_neg, "batch": batch, "resolution": resolution, "gaussians": n_gaussians}
    total = cfg.loop.steps
    anneal = min(cfg.guidance.anneal_steps, total)
    # the first pass over the early window compiles, records CUDA graphs and autotunes, not all of it within the
    # warm-up updates (measured: the first pass ~6 ms per update slower on the H100); the early regime is timed
    # again once all that is done, and the start-up is what the first pass cost beyond as many steady updates
    first_ms, warm_s = loop_ms(state, sampler, objective, cfg, 0, steps, device)
    result["ms_per_update_early"], _ = loop_ms(state, sampler, objective, cfg, 0, steps, device)
    result["ms_per_update_early_first_pass"] = first_ms
    result["startup_s"] = warm_s + steps * (first_ms - result["ms_per_update_early"]) / 1e3
    result["ms_per_update_mid"], _ = loop_ms(state, sampler, objective, cfg, anneal // 2, steps, device)
    late_step = max(3500, anneal)  # t < 500: the last 3500 updates of the recipe
    result["ms_per_update_late"], _ = loop_ms(state, sampler, objective, cfg, late_step, steps, device)
    # loop updates whose VAE encoder ran as CUDA graphs (fast path; lucidkit/prior/graphed.py), as a check
    result["encoder_graph_replays"] = getattr(prior.vae.encoder, "replays", None)
    # projected recipe time: while t's upper end anneals (980 -> 500) the cost falls from the early to the late
    # regime; the trapezoid rule over the measured start, middle and end of that phase, then the late regime
    anneal_mean = (result["ms_per_update_early"] + 2 * result["ms_per_update_mid"] + result["ms_per_update_late"]) / 4
    result["ms_per_update_recipe"] = (anneal * anneal_mean + (total - anneal) * result["ms_per_update_late"]) / total
    result["projected_recipe_min"] = total * result["ms_per_update_recipe"] / 1e3 / 60
    if device.type == "cuda":
        result["peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    inv_late = expected_inversion_calls(cfg, late_step)
    if with_breakdown:
        result["breakdown_ms"] = breakdown(prior, guidance, state, sampler, cfg, device, perp_neg)
        result["late_update_ms"] = late_update_parts(result, cfg, perp_neg, inv_late)
    flops, unet_one, vae_one = update_flops(prior, guidance, cfg, perp_neg, inv_late)
    result["late_inversion_calls_mean"] = inv_late
    result["unet_tflop_per_image"] = unet_one / 1e12
    result["vae_encoder_tflop_per_image"] = vae_one / 1e12
    result["tflop_per_late_update"] = flops / 1e12
    result["achieved_tflops_late"] = flops / (result["ms_per_update_late"] * 1e-3) / 1e12
    if peak_rate:
        result["floor_ms_late"] = flops / (peak_rate * 1e12) * 1e3
    if extend is not None:
        extend(result, prior, guidance, sampler, cfg, objective, device, perp_neg, peak_rate)
    del prior, guidance, state, objective
    return result


def _add_release_habits(prior):
    """The release's per-call habits: empty the CUDA cache and synchronise after every UNet call."""
    inner = prior.predict_noise

    def predict_noise(*args, **kwargs):
        out = inner(*args, **kwargs)
        if prior.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        return out

    prior.predict_noise = predict_noise


def bench_speed(arch: str = "sd21-base", device: str = "auto", steps: int = 10, batch: int = 4,
                resolution: int = 0, n_gaussians: int = 100_000, out: str | None = None,
                cases: tuple[str, ...] = ("fast", "fast-perpneg", "eager", "naive", "low-memory")) -> dict:
    """Run the benchmark cases and return (and optionally save) the results."""
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    from lucidkit.arch import arch_file

    unet_cfg = json.loads(arch_file(arch, "unet").read_text())
    vae_cfg = json.loads(arch_file(arch, "vae").read_text())
    native = unet_cfg["sample_size"] * 2 ** (len(vae_cfg["block_out_channels"]) - 1)
    resolution = resolution or native
    rate = matmul_tflops(dev)
    cuda = dev.type == "cuda"
    fast_precision = "bf16" if cuda else "fp32"
    specs = {
        "fast": dict(precision=fast_precision, perp_neg=False, fast=cuda, low_memory=False),
        "eager": dict(precision=fast_precision, perp_neg=False, fast=False, low_memory=False),
        # the start-up modes of prior.compile (graphs, regional, encoder): the UNet replayed as CUDA graphs
        **{mode: dict(precision=fast_precision, perp_neg=False, fast=mode if cuda else False, low_memory=False)
           for mode in GRAPHED_UNET_MODES},
        "fast-perpneg": dict(precision=fast_precision, perp_neg=True, fast=cuda, low_memory=False),
        "naive": dict(precision="fp16" if cuda else "fp32", perp_neg=False, fast=False, low_memory=False,
                      release_habits=True),
        "low-memory": dict(precision=fast_precision, perp_neg=False, fast=False, low_memory=True),
    }
    from lucidkit.bench.speed_avatar import avatar_arch, avatar_specs

    specs.update(avatar_specs(fast_precision, cuda))  # "avatar", "avatar-fast": SD 1.5 + OpenPose ControlNet
    results = {"device": torch.cuda.get_device_name(dev) if cuda else "cpu", "arch": arch,
               "matmul_tflops": rate, "torch": torch.__version__, "cases": []}
    unknown = [name for name in cases if name not in specs]
    if unknown:
        from lucidkit.errors import UserError

        raise UserError(f"unknown speed case(s) {', '.join(unknown)}; known: {', '.join(specs)}")
    for name in cases:
        spec = specs[name]
        case_arch = avatar_arch(arch) if "build" in spec else arch
        r = run_case(name, case_arch, dev, spec["precision"], batch, resolution, n_gaussians, spec["perp_neg"],
                     spec["fast"], spec["low_memory"], steps, release_habits=spec.get("release_habits", False),
                     with_breakdown=name != "naive", peak_rate=rate, builder=spec.get("build"),
                     extend=spec.get("extend"))
        results["cases"].append(r)
        print(format_case(r), flush=True)
        if out:  # after every case, so a run cut short keeps what it measured
            from lucidkit.export import write_json

            write_json(out, results)
    by_name = {r["case"]: r for r in results["cases"]}
    if "fast" in by_name and "naive" in by_name:
        results["speedup_late"] = by_name["naive"]["ms_per_update_late"] / by_name["fast"]["ms_per_update_late"]
        results["speedup_early"] = by_name["naive"]["ms_per_update_early"] / by_name["fast"]["ms_per_update_early"]
        results["speedup_recipe"] = by_name["naive"]["ms_per_update_recipe"] / by_name["fast"]["ms_per_update_recipe"]
    print(format_table(results), flush=True)
    if out:
        from lucidkit.export import write_json

        write_json(out, results)
        Path(out).with_suffix(".txt").write_text(format_table(results) + "\n")
    return results


def format_case(r: dict) -> str:
    graphs = "" if r.get("encoder_graph_replays") is None else f", encoder graph replays {r['encoder_graph_replays']}"
    return (f"[{r['case']}] early {r['ms_per_update_early']:.1f} ms/update (first pass "
            f"{r['ms_per_update_early_first_pass']:.1f}), mid {r['ms_per_update_mid']:.1f}, late "
            f"{r['ms_per_update_late']:.1f}, recipe mean {r['ms_per_update_recipe']:.1f}, "
            f"peak {r.get('peak_allocated_gib', float('nan')):.2f} GiB{graphs}")


def format_table(results: dict) -> str:
    archs = ", ".join(sorted({r.get("arch", results["arch"]) for r in results["cases"]})) or results["arch"]
    lines = [f"lucidkit bench speed — {archs} on {results['device']} (torch {results['torch']}), "
             f"matmul {results['matmul_tflops']:.1f} TFLOP/s",
             f"{'case':<14}{'early ms':>10}{'mid ms':>8}{'late ms':>9}{'mean ms':>9}{'floor ms':>10}{'TFLOP/s':>9}"
             f"{'peak GiB':>10}{'recipe min':>12}{'start-up s':>12}"]
    lines[1:1] = [f"{r['case']}: {r['arch']} + a random OpenPose ControlNet, built-in body in {r['pose']}"
                  f"{', hands drawn' if r.get('hands') else ''}"
                  for r in results["cases"] if "pose" in r]  # the avatar cases (lucidkit/bench/speed_avatar.py)
    for r in results["cases"]:
        lines.append(f"{r['case']:<14}{r['ms_per_update_early']:>10.1f}{r['ms_per_update_mid']:>8.1f}"
                     f"{r['ms_per_update_late']:>9.1f}{r['ms_per_update_recipe']:>9.1f}"
                     f"{r.get('floor_ms_late', float('nan')):>10.1f}{r['achieved_tflops_late']:>9.0f}"
                     f"{r.get('peak_allocated_gib', float('nan')):>10.2f}{r['projected_recipe_min']:>12.1f}"
                     f"{r['startup_s']:>12.0f}")
    for r in results["cases"]:
        if "late_update_ms" in r:
            parts = ", ".join(f"{k} {v:.1f}" for k, v in r["late_update_ms"].items())
            lines.append(f"  {r['case']} late update (ms): {parts}")
            lines.append(f"  {r['case']} pieces (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in r["breakdown_ms"].items()))
    if "speedup_late" in results:
        lines.append(f"speed-up of the fast path over the naive path: {results['speedup_early']:.2f}x early, "
                     f"{results['speedup_late']:.2f}x late, {results['speedup_recipe']:.2f}x over the recipe")
    return "\n".join(lines)
