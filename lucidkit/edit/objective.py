"""The edit objective: guidance on renders of the current scene plus the anchor to the original Gaussians."""

from __future__ import annotations

import torch
from torch import Tensor

from lucidkit.edit.config import EditConfig
from lucidkit.guidance import ScoreDistillation
from lucidkit.optimize import TrainState
from lucidkit.splat.render import render_state


def anchor_loss(splats, original: dict, index: Tensor, editable: Tensor | None,
                weights: dict[str, float]) -> Tensor:
    """Σ_g weight_g · mean over editable Gaussians of the mean squared difference between their raw values of group
    g and `original[g][index]` (`index` [N]: the input Gaussian each one descends from; `editable` [N] bool or None
    for all)."""
    n = splats["means"].shape[0]
    rows = torch.ones(n, dtype=torch.bool, device=index.device) if editable is None else editable
    count = rows.sum().clamp_min(1)
    total = splats["means"].new_zeros(())
    for name, weight in weights.items():
        if weight:
            diff = (splats[name] - original[name][index]).reshape(n, -1)  # [N, P]
            total = total + weight * (diff.pow(2).mean(dim=1) * rows).sum() / count
    return total


class EditObjective:
    """Guidance on the renders (toward the target prompt) plus the anchor to the original Gaussians."""

    def __init__(self, guidance: ScoreDistillation, cfg: EditConfig, original: dict, state: TrainState):
        self.guidance, self.cfg, self.original, self.state = guidance, cfg, original, state
        a = cfg.anchor
        self.weights = {"means": a.means, "scales": a.scales, "sh0": a.colors, "opacities": a.opacities}

    def __call__(self, out, cams, step, splats):
        images = out.rgb.permute(0, 3, 1, 2)  # [B, 3, H, W]
        extra = {}
        if self.guidance.cfg.method == "dds":  # the input scene at the same views, on the same backgrounds
            with torch.no_grad():
                extra["reference"] = render_state(self.original, cams, out.info["backgrounds"]).rgb.permute(0, 3, 1, 2)
        loss, logs = self.guidance.loss(images, cams.azimuth_deg, step, self.state.generator, **extra)
        if self.cfg.anchor.strength:
            frozen = self.state.frozen
            anchor = self.cfg.anchor.strength * anchor_loss(
                splats, self.original, self.state.strategy_state["anchor_index"],
                None if frozen is None else ~frozen, self.weights)
            loss = loss + anchor
            logs["anchor"] = anchor.detach()
        return loss, logs
