"""Optimizers of a Gaussian scene: one Adam per parameter group, and the recipe's learning-rate schedules as plain
functions (`lr_at`, `apply_lrs`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SH_C0 = 0.28209479177387814
"""Degree-0 real spherical harmonic, 1 / (2 sqrt(pi)): rgb = 0.5 + SH_C0 * sh0."""


@dataclass
class OptimConfig:
    """Adam learning rates per Gaussian parameter, decayed log-linearly from `*_init` to `*_final` over the run.

    Defaults are the LucidDreamer release's recipe (docs/ism.md). Positions are absolute world units: the recipe's
    value is INRIA's 1.6e-4 times a scene extent of 3.5.
    """

    means_lr_init: float = 5.6e-4
    """Learning rate of the positions at step 0."""
    means_lr_final: float = 5.6e-6
    """Learning rate of the positions at the last step."""
    sh0_lr_init: float = 5e-3
    """Learning rate of the base colour (sh0) at step 0."""
    sh0_lr_final: float = 3e-3
    """Learning rate of the base colour (sh0) at the last step."""
    shN_lr_ratio: float = 1.0 / 20.0
    """Learning rate of the higher SH coefficients (shN) as a fraction of sh0's."""
    scales_lr_init: float = 5e-3
    """Learning rate of the log scales at step 0."""
    scales_lr_final: float = 1e-3
    """Learning rate of the log scales at the last step."""
    quats_lr_init: float = 1e-3
    """Learning rate of the rotation quaternions at step 0."""
    quats_lr_final: float = 2e-4
    """Learning rate of the rotation quaternions at the last step."""
    opacities_lr: float = 0.05
    """Learning rate of the opacity logits (constant)."""
    adam_eps: float = 1e-15
    """Adam's epsilon (tiny, as in 3DGS: gradients of Gaussian parameters are very small)."""

    def lr_ranges(self) -> dict[str, tuple[float, float]]:
        """(initial, final) learning rate per parameter name."""
        return {
            "means": (self.means_lr_init, self.means_lr_final),
            "scales": (self.scales_lr_init, self.scales_lr_final),
            "quats": (self.quats_lr_init, self.quats_lr_final),
            "opacities": (self.opacities_lr, self.opacities_lr),
            "sh0": (self.sh0_lr_init, self.sh0_lr_final),
            "shN": (self.sh0_lr_init * self.shN_lr_ratio, self.sh0_lr_final * self.shN_lr_ratio),
        }

    def initial_lrs(self) -> dict[str, float]:
        """Learning rate per parameter name at step 0 (the `lrs` argument of `make_optimizers`)."""
        return {name: lr_range[0] for name, lr_range in self.lr_ranges().items()}


def make_optimizers(
    splats: torch.nn.ParameterDict, lrs: dict[str, float], eps: float = 1e-15
) -> dict[str, torch.optim.Adam]:
    """One Adam per parameter (`{name: Adam}`), the layout gsplat's densification strategies expect.

    `lrs` maps every parameter name in `splats` to its learning rate; each optimizer has one param group
    whose "name" is the parameter's name. On CUDA the fused Adam kernel steps each parameter in one launch.
    """
    missing = sorted(set(splats.keys()) - set(lrs))
    if missing:
        raise ValueError(f"make_optimizers: no learning rate for {missing}")
    return {
        name: torch.optim.Adam([{"params": [param], "lr": lrs[name], "name": name}], eps=eps, fused=param.is_cuda)
        for name, param in splats.items()
    }


def lr_at(step: int, lr_init: float, lr_final: float, max_steps: int) -> float:
    """Log-linear interpolation from `lr_init` (step 0) to `lr_final` (step >= max_steps), like 3DGS's
    `get_expon_lr_func` without the delay: lr_init^(1-t) * lr_final^t with t = clamp(step / max_steps, 0, 1)."""
    if lr_init == lr_final:
        return lr_init
    if lr_init <= 0 or lr_final <= 0:
        raise ValueError(f"log-linear decay needs positive learning rates, got {lr_init} -> {lr_final}")
    t = min(max(step / max(max_steps, 1), 0.0), 1.0)
    return math.exp((1.0 - t) * math.log(lr_init) + t * math.log(lr_final))


def apply_lrs(
    optimizers: dict[str, torch.optim.Optimizer], step: int, cfg: OptimConfig, max_steps: int
) -> dict[str, float]:
    """Set each optimizer's learning rate to its schedule's value at `step` of `max_steps`; return them."""
    lrs = {}
    for name, (lr_init, lr_final) in cfg.lr_ranges().items():
        if name in optimizers:
            lrs[name] = lr_at(step, lr_init, lr_final, max_steps)
            for group in optimizers[name].param_groups:
                group["lr"] = lrs[name]
    return lrs


