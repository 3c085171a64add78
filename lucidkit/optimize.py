"""The one optimisation loop shared by every 3D command (generate, edit), with a state that resumes exactly.

    for step in [start, steps):
        learning rates ← schedule(step)
        cameras ← sampler(batch, step)            backgrounds ← recipe's random solid colours
        render ← rasterise(Gaussians, cameras)    (gsplat on CUDA, the torch reference on CPU)
        loss ← objective(render, cameras, step)   (guidance + regularisers; supplied by the command)
        backward → densify/prune statistics → Adam → densify/prune
        callbacks(progress, previews, checkpoints)

What differs between commands is only the objective, the initial Gaussians and which parameters are frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from lucidkit.cameras import CameraBatch, OrbitSampler
from lucidkit.splat.optim import OptimConfig, apply_lrs, make_optimizers
from lucidkit.splat.render import RenderOutput, render_state


@dataclass
class LoopConfig:
    """The shape of the optimisation: updates, views per update, render size, backgrounds."""

    steps: int = 5000
    """Total number of updates (a resumed run continues to this total)."""
    batch_size: int = 4
    """Views rendered per update (B)."""
    resolution: int = 0
    """Render size in pixels; 0 = the prior's native resolution."""
    random_background_prob: float = 0.66
    """Probability a training view's white background is replaced by a random colour (half) or black (half)."""
    scale_jitter: float = 0.1118
    """Per-update jitter of all Gaussian scales: s·(1 + N(0,1)·scale_jitter); the recipe's sqrt(0.2)/4."""


class Objective(Protocol):
    def __call__(self, out: RenderOutput, cams: CameraBatch, step: int, splats) -> tuple[torch.Tensor, dict]: ...


@dataclass
class TrainState:
    """Everything a resumed run needs: parameters, optimizers, densification state, step and RNG."""

    splats: torch.nn.ParameterDict
    optimizers: dict
    strategy: object  # gsplat DefaultStrategy (or None: no densification)
    strategy_state: dict
    generator: torch.Generator  # CPU generator for every random choice in the loop
    step: int = 0
    frozen: torch.Tensor | None = None  # [N] bool: Gaussians whose parameters must not change (edit --region)
    extras: dict = field(default_factory=dict)


def new_state(splats, optim: OptimConfig, strategy, seed: int) -> TrainState:
    state = strategy.initialize_state(scene_scale=1.0) if strategy is not None else {}
    return TrainState(
        splats=splats,
        optimizers=make_optimizers(splats, optim.initial_lrs(), eps=optim.adam_eps),
        strategy=strategy,
        strategy_state=state,
        generator=torch.Generator().manual_seed(seed),
    )


def sample_backgrounds(n: int, prob: float, generator: torch.Generator) -> torch.Tensor:
    """[n, 3] training backgrounds: white, or with `prob` a random solid colour (half) or black (half)."""
    bg = torch.ones(n, 3)
    u = torch.rand(n, generator=generator)
    colours = torch.rand(n, 3, generator=generator)
    replace = u < prob
    bg[replace & (u < prob / 2)] = colours[replace & (u < prob / 2)]
    bg[replace & (u >= prob / 2)] = 0.0
    return bg


def optimize(
    state: TrainState,
    sampler: OrbitSampler,
    objective: Objective,
    cfg: LoopConfig,
    optim: OptimConfig,
    callbacks: list[Callable[[TrainState, dict], None]] = (),
) -> TrainState:
    """Run updates from `state.step` to `cfg.steps`. Callbacks see the state after every update."""
    while state.step < cfg.steps:
        step = state.step
        apply_lrs(state.optimizers, step, optim, cfg.steps)
        cams = sampler.sample(cfg.batch_size, step, state.generator)
        backgrounds = sample_backgrounds(cfg.batch_size, cfg.random_background_prob, state.generator)
        scale_mult = 1.0 + float(torch.randn(1, generator=state.generator)) * cfg.scale_jitter
        out = render_state(state.splats, cams, backgrounds, max(scale_mult, 0.5))
        out.info["backgrounds"] = backgrounds  # [B, 3]: objectives that render a reference need the same ones
        if state.strategy is not None:
            state.strategy.step_pre_backward(state.splats, state.optimizers, state.strategy_state, step, out.info)
        loss, logs = objective(out, cams, step, state.splats)  # cameras stay on the CPU: no host syncs
        loss.backward()
        if state.frozen is not None:
            for p in state.splats.values():
                if p.grad is not None:
                    p.grad[state.frozen] = 0
        for opt in state.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        if state.strategy is not None:
            densify_and_prune(state, step, out.info)
        state.step = step + 1
        # the loss stays a device tensor: callbacks read it only when they display it (a sync)
        logs = {"loss": loss.detach(), "gaussians": len(state.splats["means"]), **logs}
        for cb in callbacks:
            cb(state, logs)
    return state


def densify_and_prune(state: TrainState, step: int, info: dict) -> None:
    """The strategy's post-backward step (statistics, clone/split/prune, opacity reset), in place on `state`.

    Frozen Gaussians (`state.frozen`) are never cloned, split, pruned or reset: while the strategy runs they look
    unseen (no screen radius, so no gradient statistics) and small and opaque (so no prune rule applies), and
    their true opacities and scales are put back afterwards. The mask rides in the strategy state, which gsplat's
    ops carry through every clone, split and prune like any other per-Gaussian tensor.
    """
    if state.frozen is None:
        state.strategy.step_post_backward(state.splats, state.optimizers, state.strategy_state, step, info,
                                          packed=False)
        return
    frozen = state.frozen  # [N] bool
    info = {**info, "radii": info["radii"].masked_fill(frozen[None, :, None], 0)}  # [C, N, 2]
    with torch.no_grad():
        kept = {name: state.splats[name][frozen].clone() for name in ("opacities", "scales")}
        state.splats["opacities"][frozen] = 20.0  # sigmoid = 1: above any opacity threshold
        state.splats["scales"][frozen] = -20.0  # exp = 2e-9: below any size threshold
    state.strategy_state["frozen"] = frozen
    try:
        state.strategy.step_post_backward(state.splats, state.optimizers, state.strategy_state, step, info,
                                          packed=False)
    finally:
        frozen = state.strategy_state.pop("frozen")
        with torch.no_grad():
            for name, values in kept.items():
                state.splats[name][frozen] = values
        state.frozen = frozen


# ---------------------------------------------------------------------------------------------------------------
# The state as a checkpoint payload: plain tensors and numbers only, so it loads with torch.load(weights_only=True).
# ---------------------------------------------------------------------------------------------------------------


def state_payload(state: TrainState) -> dict:
    """Everything `restore_state` needs to continue exactly where `state` is, on the CPU."""
    return {
        "step": state.step,
        "splats": {k: v.detach().cpu() for k, v in state.splats.items()},
        "optimizers": {k: opt.state_dict() for k, opt in state.optimizers.items()},
        "strategy_state": {k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in state.strategy_state.items()},
        "generator": state.generator.get_state(),
        # gsplat's split draws from the global RNGs, so they are part of an exact resume
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state() if state.splats["means"].is_cuda else None,
        "frozen": None if state.frozen is None else state.frozen.cpu(),
        "extras": state.extras,
    }


def restore_state(payload: dict, optim: OptimConfig, strategy, device) -> TrainState:
    """Rebuild a TrainState from a `state_payload` (and restore the global RNGs it saved)."""
    splats = torch.nn.ParameterDict(
        {k: torch.nn.Parameter(v.to(device)) for k, v in payload["splats"].items()}
    )
    optimizers = make_optimizers(splats, optim.initial_lrs(), eps=optim.adam_eps)
    for k, opt in optimizers.items():
        opt.load_state_dict(payload["optimizers"][k])
    generator = torch.Generator()
    generator.set_state(payload["generator"])
    torch.set_rng_state(payload["torch_rng"])
    if payload.get("cuda_rng") is not None and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(payload["cuda_rng"])
    strategy_state = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in payload["strategy_state"].items()}
    frozen = payload.get("frozen")
    return TrainState(
        splats=splats, optimizers=optimizers, strategy=strategy, strategy_state=strategy_state,
        generator=generator, step=int(payload["step"]),
        frozen=None if frozen is None else frozen.to(device), extras=payload.get("extras", {}),
    )
