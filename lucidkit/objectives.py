"""The objective of the commands that make an object from a prompt (generate, avatar): the guidance on the render
plus the recipe's regularisers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lucidkit.guidance import ScoreDistillation
from lucidkit.regularizers import alpha_entropy, image_regularizers


@dataclass
class RegularizerConfig:
    """Extra losses of the recipe, added to the guidance loss."""

    tv_rgb: float = 1.0
    """Weight of the total variation of the rendered RGB."""
    tv_disparity: float = 1.0
    """Weight of the total variation of the normalised disparity."""
    scale: float = 1.0
    """Weight of the mean activated Gaussian scale."""
    opaque: float = 0.0
    """Weight of the binary entropy of every rendered pixel's alpha (threestudio's `lambda_opaque`): pushes each pixel
    to covered or empty, so faint Gaussians that draw a translucent halo around the object become part of it or
    fade out. Its gradient is ~300x smaller than the guidance's at weight 1 (mean over pixels), hence weights of
    ~100. 0 = off (the recipe)."""
    opaque_from: int = 0
    """First update at which `opaque` applies. Early in a run the initial ball is mostly half-covered pixels, and
    the term erodes it before the guidance has shaped it; starting it once densification has stopped keeps the
    shape and only sharpens its silhouette."""


class RenderObjective:
    """Guidance on RGB (or, for a fraction of updates, on the normalised disparity) plus the recipe's regularisers:
    the objective of generate and avatar."""

    def __init__(self, guidance: ScoreDistillation, reg: RegularizerConfig, generator: torch.Generator,
                 condition=None):
        """`condition(cameras) -> dict` gives the ControlNet conditioning of each update's views (avatar)."""
        self.guidance, self.reg, self.generator, self.condition = guidance, reg, generator, condition
        # with a compiled prior, the image-space regularisers are compiled too (a few fused kernels instead of ~40
        # small launches right after the render, where the GPU waits for the CPU)
        self.image_terms = (torch.compile(image_regularizers, dynamic=False) if guidance.prior.compiled
                            else image_regularizers)

    def __call__(self, out, cams, step, splats):
        on_disparity = float(torch.rand(1, generator=self.generator)) < self.guidance.cfg.disparity_ratio
        on_disparity = on_disparity and not self.guidance.refining(step)  # refinement fits colours
        if on_disparity:
            disparity, loss_reg = self.regularizers(out)
            image = disparity.expand(-1, -1, -1, 3)  # [B, H, W, 3]
        else:
            image = out.rgb
        cond = self.condition(cams) if self.condition is not None else None
        loss, logs = self.guidance.loss(image.permute(0, 3, 1, 2), cams.azimuth_deg, step, self.generator, cond=cond)
        if not on_disparity:
            # after the guidance: the GPU then has the encoder and UNet work queued while the host prepares these
            # (right after the render's sync it would wait for them, ~3 ms on an H100)
            _, loss_reg = self.regularizers(out)
        loss = loss + loss_reg
        if self.reg.scale:
            loss = loss + self.reg.scale * torch.exp(splats["scales"]).mean()
        if self.reg.opaque and step >= self.reg.opaque_from:
            loss = loss + self.reg.opaque * alpha_entropy(out.alpha)
        return loss, logs

    def regularizers(self, out) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised disparity [B, H, W, 1], the weighted TV terms) of a render."""
        r = self.reg
        return self.image_terms(out.rgb, out.depth, out.alpha, r.tv_rgb, r.tv_disparity)
