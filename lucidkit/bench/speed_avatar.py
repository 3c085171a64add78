"""The avatar cases of `lucidkit bench speed`: one update of `lucidkit avatar`'s recipe at true scale.

SD 1.5 shapes with random weights (the avatar recipe's prior, `presets/avatar/default.yaml`) plus a random ControlNet
with the OpenPose ControlNet's shapes (`lucidkit/arch/sd15/controlnet_openpose.json`), B = 4 views of 512², Perp-Neg
on, Gaussians sampled on the built-in procedural body in a built-in pose. The task, its objective and its skeleton
condition are `lucidkit.avatar.AvatarTask`'s own, so every timed update draws the skeleton of its views (projection,
visibility ray casts, drawing; both hands' keypoints too, as for a real OpenPose ControlNet) and runs the ControlNet
before the UNet calls it conditions (the target, the CFG branches and, with `control.in_inversion`, the inversion
steps), as a real run does.
The prior is made fast (channels-last, and compiled for "avatar-fast") before the ControlNet is attached, in the
order `lucidkit avatar` follows (`load_prior`, then `AvatarTask.attach`).

Cases: "avatar" (eager channels-last: the default of a run without `prior.compile`) and "avatar-fast" (the UNet and
VAE encoder compiled with CUDA graphs, like "fast"). With `--arch tiny` (CPU smoke runs) the tiny architecture and a
random ControlNet of its UNet's shapes are used instead.
"""

from __future__ import annotations

import torch

POSE = "a-pose"  # a built-in pose: arms away from the body, so the skeleton has every limb
PROMPT = "a knight in shining armour"
# The avatar recipe's architecture; "tiny" stays tiny (smoke runs), sd15 stays sd15.
AVATAR_ARCH = {"sd21-base": "sd15"}


def avatar_specs(precision: str, cuda: bool) -> dict:
    """The avatar cases for `bench_speed`'s table: the usual spec keys plus the architecture, builder and extras."""
    common = dict(precision=precision, perp_neg=True, low_memory=False, build=build_avatar, extend=extend_avatar)
    return {"avatar": dict(common, fast=False), "avatar-fast": dict(common, fast=cuda)}


def avatar_arch(arch: str) -> str:
    return AVATAR_ARCH.get(arch, arch)


def random_openpose_controlnet(prior, arch: str, seed: int = 0):
    """A ControlNet with random weights that fits `prior`: the SD 1.5 OpenPose ControlNet's config for sd15,
    otherwise one made from the prior's UNet config (condition images shrunk as much as the VAE shrinks images)."""
    import json

    from diffusers import ControlNetModel

    from lucidkit.arch import arch_file

    torch.manual_seed(seed)
    if arch == "sd15":
        cfg = json.loads(arch_file("sd15", "controlnet_openpose").read_text())
        with torch.device(prior.device):
            return ControlNetModel.from_config(cfg)
    unet = getattr(prior.unet, "_orig_mod", prior.unet)
    levels = prior.vae_scale_factor.bit_length()  # factor 2**(levels - 1): 8 -> 4 conv stages, 4 -> 3
    widths = (16, 32, 96, 256)[:levels]
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=widths, load_weights_from_unet=False)


def build_avatar(arch: str, device, precision: str, batch: int, resolution: int, n_gaussians: int, perp_neg: bool,
                 fast: bool, low_memory: bool, naive: bool = False, seed: int = 0):
    """`speed.build`'s counterpart for an avatar run: (prior, guidance, cfg, state, objective, sampler), all built
    by `AvatarTask` from the avatar's default preset, except the prior and ControlNet (random weights)."""
    from lucidkit.avatar import AvatarTask, resolve_config
    from lucidkit.guidance import ScoreDistillation
    from lucidkit.optimize import new_state
    from lucidkit.prior.random_weights import random_prior
    from lucidkit.splat.densify import make_strategy

    prior = random_prior(arch, device=device, dtype=precision, seed=seed)
    if not naive:
        prior.enable_fast_path(compile=fast)
    if low_memory:
        prior.enable_low_memory()
    cfg = resolve_config("default", {
        "prompt": PROMPT,
        "loop": {"batch_size": batch, "resolution": resolution},
        "guidance": {"perp_neg": perp_neg},
        "body": {"pose": POSE, "n_points": n_gaussians},
        "control": {"model": f"random:{arch}"},
    })
    task = AvatarTask(cfg)
    task.check_input()  # the built-in body in the pose
    prior.attach_controlnet(random_openpose_controlnet(prior, arch, seed),
                            source={"spec": f"random:{arch}", "kind": "random", "arch": arch})
    task.resolve_hands(prior)  # as for a real OpenPose ControlNet: both hands' keypoints are drawn too
    guidance = ScoreDistillation(prior, cfg.prompt, cfg.guidance)
    if low_memory:
        prior.offload_text_encoder()
    strategy = make_strategy(cfg.densify, resolution, resolution)
    state = new_state(task.initial_splats(prior.device), cfg.optim, strategy, cfg.seed)
    objective = task.objective(guidance, state)
    return prior, guidance, cfg, state, objective, task.sampler(resolution)


def extend_avatar(result: dict, prior, guidance, sampler, cfg, objective, device, perp_neg: bool,
                  peak_rate: float | None = None) -> None:
    """Add the avatar's own pieces to a case's result: the skeleton condition of B views, the UNet calls with the
    ControlNet (batch B for ISM's target e_s and, with `control.in_inversion`, each inversion step; the CFG batch),
    the ControlNet's FLOPs; the late update's parts then use the conditioned calls."""
    from lucidkit.bench.timing import count_flops, time_ms

    B = cfg.loop.batch_size
    n_cfg = 4 if perp_neg else 2
    inversion_calls = result["late_inversion_calls_mean"] if cfg.control.in_inversion else 0.0  # conditioned ones
    cams = sampler.sample(B, 2000, torch.Generator().manual_seed(2))
    condition = objective.condition  # AvatarTask.condition: the skeleton images of these views
    cond = condition(cams)
    x = torch.randn(B, prior.latent_channels, prior.latent_size, prior.latent_size, device=device)
    emb = guidance.positive_embeddings(cams.azimuth_deg)
    pieces = {
        "skeleton_condition": time_ms(lambda: condition(cams), device, repeat=5, warmup=1),
        "controlnet_unet_call_B": time_ms(lambda: guidance._eps(x, 400, emb, cond), device),
        f"controlnet_unet_call_{n_cfg}B": time_ms(
            lambda: guidance._eps(x.repeat(n_cfg, 1, 1, 1), 400, emb.repeat(n_cfg, 1, 1), cond), device),
    }
    if "breakdown_ms" in result:
        result["breakdown_ms"].update(pieces)
        parts = result["late_update_ms"]
        parts["target_unet_e_s"] = pieces["controlnet_unet_call_B"]
        parts["cfg_unet"] = pieces[f"controlnet_unet_call_{n_cfg}B"]
        if inversion_calls:
            inversion = next(k for k in parts if k.startswith("inversion_unet_x"))
            parts[inversion] = inversion_calls * pieces["controlnet_unet_call_B"]
        parts["skeleton_condition"] = pieces["skeleton_condition"]
        del parts["other"]  # what the pieces leave unexplained, again last
        parts["other"] = result["ms_per_update_late"] - sum(parts.values())
    # the ControlNet runs once per conditioned UNet pass: e_s (B), the CFG branches (n_cfg * B), the inversion steps
    one = {k: v[:1] if torch.is_tensor(v) else v for k, v in cond.items()}
    t = torch.tensor([400], device=device)
    with torch.no_grad():
        controlnet_one = count_flops(lambda: prior._controlnet_residuals(
            x[:1].to(prior.dtype), t, emb[:1].to(prior.dtype), one))
    flops = result["tflop_per_late_update"] * 1e12 + B * (1 + n_cfg + inversion_calls) * controlnet_one
    result["pose"], result["hands"] = POSE, condition.__self__.hands
    result["controlnet_tflop_per_image"] = controlnet_one / 1e12
    result["tflop_per_late_update"] = flops / 1e12
    result["achieved_tflops_late"] = flops / (result["ms_per_update_late"] * 1e-3) / 1e12
    if peak_rate:
        result["floor_ms_late"] = flops / (peak_rate * 1e12) * 1e3
