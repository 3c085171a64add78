"""Densification and pruning: the recipe's settings mapped onto gsplat's `DefaultStrategy`.

gsplat's strategy is pure torch (it runs on CPU too) and edits the parameter and optimizer dicts the caller owns:

    strategy = make_strategy(DensifyConfig(), render_width=512)
    state = strategy.initialize_state(scene_scale=1.0)
    for step in ...:
        out = render(...)
        strategy.step_pre_backward(params, optimizers, state, step, out.info)
        loss.backward()
        strategy.step_post_backward(params, optimizers, state, step, out.info)
        optimizer steps ...

Recipe (LucidDreamer release, 3DGS-style), and how each value maps:
- every 100 iterations after iteration 100 until 3000: ``refine_every``, ``refine_start_iter``, ``refine_stop_iter``
  (gsplat refines when ``step > refine_start_iter`` and ``step % refine_every == 0``, so first at 200, as the release).
- view-space gradient threshold 7.5e-4: ``grow_grad2d``. gsplat averages, per Gaussian and over the steps since the
  last refinement, the norm of the 2D-mean gradient scaled to normalised device coordinates and multiplied by the
  number of cameras in the batch; the release summed the B views' gradients before taking one norm per iteration.
  Both measure the same quantity up to how views are pooled.
- clone/split boundary 0.0105 world units (0.003 x extent 3.5): ``grow_scale3d`` with ``scene_scale`` 1 (so the
  boundary is absolute: a Gaussian whose largest scale is <= 0.0105 is cloned, a larger one split).
- opacity reset every 300 iterations to min(opacity, 0.01): ``reset_every`` (see the bug note below).
- prune opacity < 0.005: ``prune_opa``.
- after the first opacity reset (iteration > 300): prune Gaussians whose screen radius exceeded 20 px since the last
  refinement (``prune_scale2d`` = 20 / render size, gsplat measures radii as a fraction of max(width, height); enabled
  through ``refine_scale2d_stop_iter``) or whose largest world scale exceeds 0.35 (``prune_scale3d``). gsplat's
  screen-size *split* rule that comes with ``refine_scale2d_stop_iter`` is not in the recipe and is switched off.

Bug note: gsplat 1.5.3's ``DefaultStrategy.step_post_backward`` tests ``step % self.reset_every == 0 & step > 0``.
``&`` binds tighter than the comparisons, so this reads ``step % r == (0 & step) > 0``, i.e.
``(step % r == 0) and (0 > 0)``: always false, and the opacity reset never happens. `RecipeStrategy` performs the
reset itself (same operation, same value, same place in the step) and stays correct if gsplat fixes the test,
because resetting twice to min(opacity, 0.01) changes nothing.

Second quirk: to track each Gaussian's largest screen radius, gsplat 1.5.3 assigns through an index that repeats a
Gaussian once per camera that sees it (``state["radii"][ids] = max(...)``), so with several views the last camera
wins instead of the largest. `RecipeStrategy` accumulates its statistics itself, densely with masks: the radius is
the maximum over all cameras, and no index list is built, so an update needs no host synchronisation.

Randomness: gsplat's split draws the new positions with the global torch generator (seed it with
``torch.manual_seed`` for reproducible runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Union

import torch
from gsplat.strategy import DefaultStrategy
from gsplat.strategy.ops import reset_opa


@dataclass
class DensifyConfig:
    """When and how Gaussians are cloned, split, pruned and their opacities reset (recipe defaults)."""

    refine_every: int = 100
    """Densify and prune every this many iterations."""
    start_iter: int = 100
    """Densify only after this iteration."""
    stop_iter: int = 3000
    """Stop densifying, pruning and resetting opacity at this iteration."""
    grad_threshold: float = 7.5e-4
    """Average view-space (NDC) gradient norm above which a Gaussian is cloned or split."""
    clone_split_scale: float = 0.0105
    """World-unit largest scale at or below which a high-gradient Gaussian is cloned, above which it is split."""
    opacity_reset_every: int = 300
    """Reset every opacity to at most 0.01 (twice the prune threshold) every this many iterations."""
    prune_opacity: float = 0.005
    """Remove Gaussians with opacity below this."""
    prune_screen_radius_px: float = 20.0
    """After the first opacity reset, remove Gaussians whose screen radius exceeded this many pixels."""
    prune_world_scale: float = 0.35
    """After the first opacity reset, remove Gaussians whose largest scale exceeds this, world units."""
    verbose: bool = False
    """Print what each refinement did."""


@dataclass
class RecipeStrategy(DefaultStrategy):
    """gsplat's `DefaultStrategy` with the opacity reset that gsplat 1.5.3 never performs and a per-Gaussian screen
    radius that is the maximum over all cameras of the batch (module docstring)."""

    def _update_state(
        self,
        params: Union[Dict[str, torch.nn.Parameter], torch.nn.ParameterDict],
        state: Dict[str, Any],
        info: Dict[str, Any],
        packed: bool = False,
    ):
        """gsplat's statistics (NDC gradient norm sum, view count, largest screen radius per Gaussian), accumulated
        densely over the batch's cameras with masks instead of index lists: no host synchronisation per update,
        and the radius is the maximum over all cameras."""
        if packed:
            return super()._update_state(params, state, info, packed=packed)
        grads = info[self.key_for_gradient].absgrad if self.absgrad else info[self.key_for_gradient].grad  # [C, N, 2]
        to_ndc = grads.new_tensor([info["width"] / 2.0, info["height"] / 2.0]) * info["n_cameras"]  # [2]
        radii = info["radii"]  # [C, N, 2] pixels
        seen = (radii > 0).all(dim=-1)  # [C, N]
        n = grads.shape[1]
        for key in ("grad2d", "count") + (("radii",) if self.refine_scale2d_stop_iter > 0 else ()):
            if state[key] is None:
                state[key] = torch.zeros(n, device=grads.device)
        state["grad2d"] += ((grads * to_ndc).norm(dim=-1) * seen).sum(dim=0)  # [N]
        state["count"] += seen.sum(dim=0).to(state["count"].dtype)  # [N]
        if self.refine_scale2d_stop_iter > 0:
            largest = (radii.max(dim=-1).values * seen).amax(dim=0)  # [N] pixels
            state["radii"] = torch.maximum(state["radii"], largest.to(state["radii"].dtype) / float(max(info["width"], info["height"])))

    def step_post_backward(
        self,
        params: Union[Dict[str, torch.nn.Parameter], torch.nn.ParameterDict],
        optimizers: Dict[str, torch.optim.Optimizer],
        state: Dict[str, Any],
        step: int,
        info: Dict[str, Any],
        packed: bool = False,
    ):
        """Accumulate gradient statistics; densify/prune on refinement steps; reset opacities on reset steps."""
        super().step_post_backward(params, optimizers, state, step, info, packed=packed)
        if 0 < step < self.refine_stop_iter and step % self.reset_every == 0:
            reset_opa(params=params, optimizers=optimizers, state=state, value=self.prune_opa * 2.0)
            if self.verbose:
                print(f"Step {step}: opacities reset to at most {self.prune_opa * 2.0}.")


def make_strategy(cfg: DensifyConfig, render_width: int, render_height: Optional[int] = None) -> RecipeStrategy:
    """A strategy for renders of ``render_width`` x ``render_height`` pixels (square if the height is omitted).

    Use ``strategy.initialize_state(scene_scale=1.0)``: the world-unit thresholds are already absolute.
    """
    size = max(render_width, render_height or render_width)
    return RecipeStrategy(
        prune_opa=cfg.prune_opacity,
        grow_grad2d=cfg.grad_threshold,
        grow_scale3d=cfg.clone_split_scale,
        grow_scale2d=float("inf"),  # no screen-size split: not part of the recipe
        prune_scale3d=cfg.prune_world_scale,
        prune_scale2d=cfg.prune_screen_radius_px / size,
        refine_scale2d_stop_iter=cfg.stop_iter,  # keeps per-Gaussian screen radii so the 2D prune can run
        refine_start_iter=cfg.start_iter,
        refine_stop_iter=cfg.stop_iter,
        reset_every=cfg.opacity_reset_every,
        refine_every=cfg.refine_every,
        pause_refine_after_reset=0,
        absgrad=False,
        revised_opacity=False,
        verbose=cfg.verbose,
    )
