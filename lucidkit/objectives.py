"""The objective of the commands that make an object from a prompt (generate, avatar): the guidance on the render
plus the recipe's regularisers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lucidkit.guidance import ScoreDistillation
from lucidkit.regularizers import alpha_entropy, image_regularizers
from lucidkit.splat.render import render_state


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
                 condition=None, sampler=None):
        """`condition(cameras) -> dict` gives the ControlNet conditioning of each update's views (avatar);
        `sampler` (the run's camera sampler) draws the refinement's fixed views (`guidance.refine_views`)."""
        self.guidance, self.reg, self.generator, self.condition = guidance, reg, generator, condition
        c = guidance.cfg
        self.held = HeldViews(guidance, sampler, c.refine_views, c.refine_hold, c.refine_from) \
            if sampler is not None and c.refine_views and c.refine_from else None
        # with a compiled prior, the image-space regularisers are compiled too (a few fused kernels instead of ~40
        # small launches right after the render, where the GPU waits for the CPU)
        self.image_terms = (torch.compile(image_regularizers, dynamic=False) if guidance.prior.compiled
                            else image_regularizers)

    def __call__(self, out, cams, step, splats):
        if self.held is not None and self.guidance.refining(step):
            # the refinement fits its own fixed views: the loop's render at this update's cameras goes unused
            out, cams, loss = self.held.loss(splats, step, len(cams), self.condition, self.generator)
            logs = {"t": 0, "s": 0}
            _, loss_reg = self.regularizers(out)
        else:
            loss, logs, loss_reg = self.guided(out, cams, step)
        loss = loss + loss_reg
        if self.reg.scale:
            loss = loss + self.reg.scale * torch.exp(splats["scales"]).mean()
        if self.reg.opaque and step >= self.reg.opaque_from:
            loss = loss + self.reg.opaque * alpha_entropy(out.alpha)
        return loss, logs

    def guided(self, out, cams, step):
        """(guidance loss, its logs, the weighted TV terms) of the loop's render."""
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
        return loss, logs, loss_reg

    def regularizers(self, out) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised disparity [B, H, W, 1], the weighted TV terms) of a render."""
        r = self.reg
        return self.image_terms(out.rgb, out.depth, out.alpha, r.tv_rgb, r.tv_disparity)


class HeldViews:
    """The refinement's fixed views and their held targets (`guidance.refine_views`, `refine_hold`).

    At `refine_from` the sampler draws the views (from their own seed, so a resumed run draws the same); every
    `hold` updates from then on all their targets are remade from the current renders, and each update fits a
    random batch of them. A resumed run remakes the targets at its first update."""

    def __init__(self, guidance: ScoreDistillation, sampler, n: int, hold: int, start: int):
        self.guidance, self.sampler, self.n, self.hold, self.start = guidance, sampler, n, hold, start
        self.views = self.targets = None
        self.white = torch.ones(n, 3)  # backgrounds of the fixed views

    def loss(self, splats, step: int, batch: int, condition, generator: torch.Generator):
        """(the render of this update's views, those views, the weighted squared error to their targets)."""
        if self.views is None:
            self.views = self.sampler.sample(self.n, self.start, torch.Generator().manual_seed(self.start))
        white = self.white
        if self.targets is None or (step - self.start) % self.hold == 0:
            with torch.no_grad():
                parts = []
                for i in range(0, self.n, batch):  # the prior's batch at a time
                    views = self.views[i:i + batch]
                    rgb = render_state(splats, views, white[i:i + batch]).rgb.permute(0, 3, 1, 2)
                    cond = condition(views) if condition is not None else None
                    parts.append(self.guidance.refined_images(rgb, views.azimuth_deg, generator, cond).clamp(0, 1))
                self.targets = torch.cat(parts)  # [N, 3, H, W]
        pick = torch.randperm(self.n, generator=generator)[:batch]
        views = self.views[pick]
        out = render_state(splats, views, white[pick])
        target = self.targets[pick.to(self.targets.device)]
        return out, views, self.guidance.refinement_loss(out.rgb.permute(0, 3, 1, 2), target)
