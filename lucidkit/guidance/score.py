"""The guidance object: rendered images in, a latent-space loss out (ISM, or SDS as a baseline).

One step serves every option: the method only decides how x_t and the target are made (`ism.py`); CFG and
Perp-Neg are one combination (`perpneg.py`); the prior (`DiffusionPrior`) does every UNet call, so LoRA and
ControlNet conditioning reach the guidance without changing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lucidkit.guidance import ism, perpneg
from lucidkit.guidance.schedules import Interval, sample_interval


@dataclass
class GuidanceConfig:
    method: str = "ism"
    """Score distillation method: 'ism' (Interval Score Matching) or 'sds' (the DreamFusion baseline)."""
    guidance_scale: float = 7.5
    """Classifier-free guidance scale g."""
    lambda_guidance: float = 0.1
    """λ, the scale of the latent gradient."""
    weighting: str = "ism"
    """w(t): 'ism' = sqrt((1-ᾱ)/ᾱ) (the recipe, for ISM and SDS alike) or 'dreamfusion' = 1-ᾱ."""
    negative_prompt: str = ""
    """Negative prompt, the unconditional branch of classifier-free guidance."""
    view_prompts: bool = True
    """Append ', front view' / ', side view' / ', back view' and interpolate by camera azimuth."""
    perp_neg: bool = False
    """Perp-Neg: push away from the other view prompts (helps against multi-face objects)."""
    negative_w: float = -2.0
    """Perp-Neg base weight of the negatives."""
    front_decay: float = 2.0
    """Perp-Neg decay factor of the front negative."""
    side_decay: float = 10.0
    """Perp-Neg decay factor of the side negative."""
    t_min: int = 20
    """Smallest sampled timestep index."""
    t_max_start: int = 980
    """Exclusive upper timestep index at the start of the run."""
    t_max_end: int = 500
    """Exclusive upper timestep index once annealed."""
    anneal_steps: int = 1500
    """Updates over which the timestep range and the interval anneal."""
    delta_t: int = 80
    """ISM interval δ_T after annealing (the recipe uses 80, 50 or 25 per prompt)."""
    delta_t_start: int = 100
    """ISM interval δ_T at the start of the run."""
    xs_delta_t: int = 200
    """Stride of the DDIM inversion that produces x_s."""
    xs_inv_steps: int = 5
    """Most UNet calls the inversion may take (1 with xs_delta_t=1000 is the fast setting)."""
    disparity_ratio: float = 0.2
    """Fraction of updates that apply the guidance to the disparity map instead of RGB."""


class ScoreDistillation:
    """Turns rendered views into a loss whose gradient on the latents is the ISM (or SDS) update.

    Text embeddings are computed once here: front/side/back view prompts, the plain prompt, the negative prompt
    and the empty prompt used for inversion.
    """

    def __init__(self, prior, prompt: str, cfg: GuidanceConfig):
        if cfg.method not in ("ism", "sds"):
            raise ValueError(f"guidance.method must be 'ism' or 'sds', got {cfg.method!r}")
        self.prior, self.cfg = prior, cfg
        texts = [f"{prompt}, front view", f"{prompt}, side view", f"{prompt}, back view", prompt,
                 cfg.negative_prompt, ""]
        emb = prior.embed(texts)  # [6, L, D]
        self.e_front, self.e_side, self.e_back, self.e_plain, self.e_neg, self.e_empty = emb.unbind(0)
        self.alphas = prior.alphas_cumprod  # [T] float32 on the prior's device
        self.steps_offset = int(getattr(prior, "steps_offset", 1))  # timestep value = index + offset

    def _eps(self, x: torch.Tensor, t: int, emb: torch.Tensor, cond: dict | None) -> torch.Tensor:
        """ε(x, t, emb) for a batch; `emb` [L, D] is broadcast, `cond` tensors are tiled to the batch."""
        if emb.dim() == 2:
            emb = emb.expand(x.shape[0], *emb.shape)
        if cond is not None:
            cond = {k: v.repeat(x.shape[0] // v.shape[0], *([1] * (v.dim() - 1))) for k, v in cond.items()}
        t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        return self.prior.predict_noise(x, t_batch, emb, cond)

    def positive_embeddings(self, azimuth_deg: torch.Tensor) -> torch.Tensor:
        """Per-view positive embedding [B, L, D]."""
        if not self.cfg.view_prompts:
            return self.e_plain.expand(len(azimuth_deg), *self.e_plain.shape)
        return perpneg.view_embeddings(azimuth_deg, self.e_front, self.e_side, self.e_back)

    def sample_interval(self, step: int, generator: torch.Generator) -> Interval:
        c = self.cfg
        return sample_interval(
            step, generator, t_min=c.t_min, t_max_start=c.t_max_start, t_max_end=c.t_max_end,
            delta_t=c.delta_t, delta_t_start=c.delta_t_start, anneal_steps=c.anneal_steps,
            steps_offset=self.steps_offset,
        )

    @torch.no_grad()
    def latent_gradient(
        self,
        z0: torch.Tensor,
        azimuth_deg: torch.Tensor,
        interval: Interval,
        noise: torch.Tensor,
        cond: dict | None = None,
    ) -> torch.Tensor:
        """Steps 2–5: the gradient to inject into the latents z0 [B, C, h, w] (no graph)."""
        c, B = self.cfg, z0.shape[0]
        t, s = interval.t, interval.s
        if c.method == "ism":
            x_t, target = ism.ism_noisy_latents(
                z0, lambda x, v: self._eps(x, v, self.e_empty, cond), self.alphas, t, s,
                noise=noise, xs_stride=c.xs_delta_t, xs_max_steps=c.xs_inv_steps, first_timestep=self.steps_offset,
            )
        else:
            x_t, target = ism.sds_noisy_latents(z0, self.alphas, t, noise=noise)

        # Step 4: every text branch in one UNet call: [negative (unconditional), positive, Perp-Neg negatives...].
        pos = self.positive_embeddings(azimuth_deg)  # [B, L, D]
        branches = [self.e_neg.expand_as(pos), pos]
        if c.perp_neg:
            weights, front_half, _ = perpneg.perpneg_weights(azimuth_deg.cpu(), c.negative_w, c.front_decay, c.side_decay)
            negs = perpneg.perpneg_negatives(front_half, self.e_front, self.e_side)  # [B, 2, L, D]
            branches += [negs[:, 0], negs[:, 1]]
        n = len(branches)
        eps = self._eps(x_t.repeat(n, 1, 1, 1), t, torch.cat(branches), cond).view(n, B, *x_t.shape[1:])
        eps_negs = eps[2:].transpose(0, 1) if c.perp_neg else None  # [B, 2, C, h, w]
        eps_hat = perpneg.guided_noise(
            eps[0], eps[1], c.guidance_scale, eps_negs, weights.to(z0.device) if c.perp_neg else None
        )
        return ism.score_gradient(eps_hat, target, self.alphas[t], c.lambda_guidance, c.weighting)

    def loss(
        self,
        images: torch.Tensor,
        azimuth_deg: torch.Tensor,
        step: int,
        generator: torch.Generator,
        cond: dict | None = None,
    ) -> tuple[torch.Tensor, dict]:
        """images [B, 3, H, W] in [0, 1] (with grad) → (loss, logs). Step 6: the gradient reaches z0 exactly."""
        z0 = self.prior.encode_images(images, generator=generator)  # [B, C, h, w], differentiable
        interval = self.sample_interval(step, generator)
        noise = torch.randn(z0.shape, generator=generator).to(z0.device, z0.dtype)
        grad = self.latent_gradient(z0.detach(), azimuth_deg, interval, noise, cond)
        loss = ism.latent_loss(z0, grad)
        return loss, {"t": interval.t, "s": interval.s}
