"""The guidance object: rendered images in, a latent-space loss out (ISM; SDS and DDS as baselines).

One step serves every option: the method only decides how x_t and the target are made (`ism.py`); CFG and
Perp-Neg are one combination (`perpneg.py`); the prior (`DiffusionPrior`) does every UNet call, so LoRA and
ControlNet conditioning reach the guidance without changing it.

Editing (`edit`, `edit-image`) adds a *source*: the prompt that describes the input and, for DDS, images of the
input at the same views. Without a negative prompt, the source prompt is then also CFG's unconditional branch, so
ε̂ = ε(x_t, source) + g·(ε(x_t, target) − ε(x_t, source)) steers from the input toward the target.
    ism  target = e_s from the DDIM inversion of z0; the inversion uses the source prompt when one is given
         (the interval then runs from the source toward the target prompt), else the empty prompt
    sds  target = the injected noise ε
    dds  target = ε̂(x̂_t, source), the CFG noise of the source image's latents noised with the same ε and t
         (Delta Denoising Score: only the difference of the two scores moves z0)

Two helpers use the same embeddings and UNet calls: `refined_images` (the prior's img2img of a render, the target of
the optional refinement stage, `refine_from`) and `prompt_disagreement` (DiffEdit's mask for `edit-image`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lucidkit.devices import to_device
from lucidkit.errors import UserError
from lucidkit.guidance import ism, perpneg
from lucidkit.guidance.schedules import Interval, sample_interval


@dataclass
class GuidanceConfig:
    method: str = "ism"
    """Score distillation method: 'ism' (Interval Score Matching), 'sds' (the DreamFusion baseline) or, for
    editing, 'dds' (Delta Denoising Score: target score minus the source image's score)."""
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
    view_interpolate: bool = True
    """Blend neighbouring view prompts by azimuth (the recipe); False: one suffix per camera, switching at
    45° and 135° as DreamFusion's prompts (and most view-labelled captions) do."""
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
    xs_start: int = 0
    """Timestep where the inversion's walk starts: z0 is noised to it with fresh noise, then walked up to s
    (capped at s). 0 = the first timestep, as in the recipe: x_s is then almost a deterministic function of z0."""
    disparity_ratio: float = 0.2
    """Fraction of updates that apply the guidance to the disparity map instead of RGB."""
    refine_from: int = 0
    """First update of the image-space refinement stage (0 = none): from here on each view is fitted to the
    prior's img2img of its own render (SDEdit: noised to `refine_strength`, denoised in `refine_steps` DDIM steps
    with CFG), as DreamGaussian's second stage does. Score distillation averages the prior's samples (the
    stripes of many samples become an orange blur); a few denoising steps from the render return one sample's
    sharp detail at the render's layout."""
    refine_strength: float = 0.4
    """How far up the schedule the render is noised before it is denoised (0-1; SDEdit's strength)."""
    refine_steps: int = 4
    """DDIM steps from the noised render back to a clean image."""
    refine_weight: float = 1000.0
    """Weight of the mean squared error between the render and its refined image."""
    refine_views: int = 0
    """0: each update's cameras get new targets (an img2img of every view at every update). N > 0: the refinement
    fits N views fixed at its start, whose targets are held for `refine_hold` updates and then remade from the
    current renders (Instruct-NeRF2NeRF's dataset update): a prior call per view every `refine_hold` updates instead
    of one per view per update. Rendered on white; densification must have stopped by `refine_from`."""
    refine_hold: int = 50
    """Updates a held target is fitted before it is remade (with `refine_views`)."""

    def check(self, methods: tuple[str, ...]) -> None:
        """One clear error for a setting no run can use (they arrive from presets and --set)."""
        if self.method not in methods:
            raise UserError(f"guidance.method must be one of {', '.join(methods)}; got {self.method!r}")
        if self.refine_from < 0:
            raise UserError(f"guidance.refine_from must be 0 (no refinement) or an update number; "
                            f"got {self.refine_from}")
        if not 0 < self.refine_strength <= 1:
            raise UserError(f"guidance.refine_strength must be in (0, 1], a fraction of the noise schedule; "
                            f"got {self.refine_strength}")
        if self.refine_steps < 1:
            raise UserError(f"guidance.refine_steps must be at least 1 DDIM step; got {self.refine_steps}")
        if self.refine_views < 0 or self.refine_hold < 1:
            raise UserError(f"guidance.refine_views must be 0 or more and guidance.refine_hold at least 1; got "
                            f"{self.refine_views} and {self.refine_hold}")


class ScoreDistillation:
    """Turns rendered views into a loss whose gradient on the latents is the ISM (or SDS / DDS) update.

    Text embeddings are computed once here: front/side/back view prompts, the plain prompt, the negative prompt,
    the empty prompt used for inversion and, when editing, the same view prompts of the source prompt.
    """

    METHODS = ("ism", "sds", "dds")

    def __init__(self, prior, prompt: str, cfg: GuidanceConfig, source_prompt: str | None = None):
        cfg.check(self.METHODS)
        self.prior, self.cfg = prior, cfg
        texts = [f"{prompt}, front view", f"{prompt}, side view", f"{prompt}, back view", prompt,
                 cfg.negative_prompt, ""]
        if source_prompt is not None:
            texts += [f"{source_prompt}, front view", f"{source_prompt}, side view", f"{source_prompt}, back view",
                      source_prompt]
        emb = prior.embed(texts)  # [6 or 10, L, D]
        self.e_front, self.e_side, self.e_back, self.e_plain, self.e_neg, self.e_empty = emb[:6].unbind(0)
        self.source = None if source_prompt is None else emb[6:]  # [4, L, D]: front, side, back, plain
        # editing without a negative prompt: CFG steers from the source prompt toward the target
        self.source_is_unconditional = source_prompt is not None and not cfg.negative_prompt
        self.alphas = prior.alphas_cumprod  # [T] float32 on the prior's device
        self.steps_offset = int(getattr(prior, "steps_offset", 1))  # timestep value = index + offset

    def _eps(self, x: torch.Tensor, t: int, emb: torch.Tensor, cond: dict | None) -> torch.Tensor:
        """ε(x, t, emb) for a batch; `emb` [L, D] is broadcast, `cond` tensors are tiled to the batch."""
        if emb.dim() == 2:
            emb = emb.expand(x.shape[0], *emb.shape)
        if cond is not None:  # tile the per-view tensors (the condition image) to the batch of this call
            cond = {k: v.repeat(x.shape[0] // v.shape[0], *([1] * (v.dim() - 1))) if torch.is_tensor(v) else v
                    for k, v in cond.items()}
        t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        return self.prior.predict_noise(x, t_batch, emb, cond)

    def positive_embeddings(self, azimuth_deg: torch.Tensor) -> torch.Tensor:
        """Per-view positive embedding [B, L, D]."""
        if not self.cfg.view_prompts:
            return self.e_plain.expand(len(azimuth_deg), *self.e_plain.shape)
        return perpneg.view_embeddings(azimuth_deg, self.e_front, self.e_side, self.e_back, self.cfg.view_interpolate)

    def source_embeddings(self, azimuth_deg: torch.Tensor) -> torch.Tensor:
        """Per-view embedding of the source prompt [B, L, D] (the empty prompt when there is none)."""
        n = len(azimuth_deg)
        if self.source is None:
            return self.e_empty.expand(n, *self.e_empty.shape)
        if not self.cfg.view_prompts:
            return self.source[3].expand(n, *self.source[3].shape)
        return perpneg.view_embeddings(azimuth_deg, *self.source[:3], self.cfg.view_interpolate)

    def unconditional_embeddings(self, azimuth_deg: torch.Tensor) -> torch.Tensor:
        """The unconditional branch of CFG [B, L, D]: the negative prompt; when editing without a negative prompt,
        the source prompt, so that guidance steers from what the input shows toward the target."""
        if self.source_is_unconditional:
            return self.source_embeddings(azimuth_deg)
        return self.e_neg.expand(len(azimuth_deg), *self.e_neg.shape)

    def sample_interval(self, step: int, generator: torch.Generator) -> Interval:
        c = self.cfg
        return sample_interval(
            step, generator, t_min=c.t_min, t_max_start=c.t_max_start, t_max_end=c.t_max_end,
            delta_t=c.delta_t, delta_t_start=c.delta_t_start, anneal_steps=c.anneal_steps,
            steps_offset=self.steps_offset,
        )

    def refining(self, step: int) -> bool:
        """Whether update `step` belongs to the image-space refinement stage (`refine_from`)."""
        return 0 < self.cfg.refine_from <= step

    @torch.no_grad()
    def refined_images(self, images: torch.Tensor, azimuth_deg: torch.Tensor, generator: torch.Generator,
                       cond: dict | None = None) -> torch.Tensor:
        """The prior's img2img of images [B, 3, H, W] in [0, 1]: the latents noised to `refine_strength` of the
        schedule, then `refine_steps` deterministic DDIM steps with CFG on the view prompts, decoded: [B, 3, H, W]."""
        c = self.cfg
        z0 = self.prior.encode_images(images, generator=generator)  # [B, C, h, w]
        last = len(self.alphas) - 1
        ts = torch.linspace(round(c.refine_strength * last), 0, c.refine_steps + 1).round().long().tolist()
        noise = to_device(torch.randn(z0.shape, generator=generator), z0.device, z0.dtype)
        x = ism.add_noise(z0, noise, self.alphas[ts[0]])
        branches = torch.cat([self.unconditional_embeddings(azimuth_deg), self.positive_embeddings(azimuth_deg)])
        clean = torch.ones((), device=self.alphas.device)  # the last step lands on ᾱ = 1: the clean image
        for now, nxt in zip(ts[:-1], ts[1:]):
            eps = self._eps(torch.cat([x, x]), now, branches, cond).view(2, *x.shape)
            eps_hat = perpneg.guided_noise(eps[0], eps[1], c.guidance_scale)
            x = ism.ddim_step(x, eps_hat, self.alphas[now], self.alphas[nxt] if nxt > 0 else clean)
        return self.prior.decode_latents(x)

    def refinement_loss(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The refinement stage's loss: the weighted mean squared error of renders to their refined images."""
        return self.cfg.refine_weight * (images - targets).square().mean()

    @torch.no_grad()
    def prompt_disagreement(self, z0: torch.Tensor, generator: torch.Generator, samples: int = 10,
                            strength: float = 0.5) -> torch.Tensor:
        """Where the target and the source prompt disagree about latents z0 [1, C, h, w]: [1, 1, h, w] in [0, 1].

        DiffEdit's mask estimate: z0 noised to `strength` of the schedule with `samples` noise draws, the mean over
        draws and channels of |ε(x_t, target) − ε(x_t, source)|, divided by its maximum. Regions that both prompts
        describe alike (the background of a recolouring) score near 0, the object to change near 1.
        """
        t = int(strength * (len(self.alphas) - 1))
        noise = to_device(torch.randn((samples, *z0.shape[1:]), generator=generator), z0.device, z0.dtype)
        x_t = ism.add_noise(z0.expand(samples, -1, -1, -1), noise, self.alphas[t])  # [n, C, h, w]
        zero = torch.zeros(samples)
        emb = torch.cat([self.positive_embeddings(zero), self.source_embeddings(zero)])  # [2n, L, D]
        eps = self._eps(torch.cat([x_t, x_t]), t, emb, None).view(2, samples, *z0.shape[1:])
        diff = (eps[0] - eps[1]).abs().mean(dim=(0, 1))[None, None]  # [1, 1, h, w]
        return diff / diff.max().clamp_min(1e-12)

    @torch.no_grad()
    def latent_gradient(
        self,
        z0: torch.Tensor,
        azimuth_deg: torch.Tensor,
        interval: Interval,
        noise: torch.Tensor,
        cond: dict | None = None,
        reference_latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Steps 2–5: the gradient to inject into the latents z0 [B, C, h, w] (no graph).

        `reference_latents` [B, C, h, w]: the source image's latents at the same views (required by 'dds').
        """
        c, B = self.cfg, z0.shape[0]
        t, s = interval.t, interval.s
        source = self.source_embeddings(azimuth_deg)  # [B, L, D]
        if c.method == "ism":
            # a ControlNet condition reaches the inversion steps too unless cond["in_inversion"] is False
            invert_cond = cond if cond is None or cond.get("in_inversion", True) else None
            x_t, target = ism.ism_noisy_latents(
                z0, lambda x, v: self._eps(x, v, source, cond), self.alphas, t, s,
                noise=noise, xs_stride=c.xs_delta_t, xs_max_steps=c.xs_inv_steps,
                first_timestep=min(max(self.steps_offset, c.xs_start), s),
                eps_invert=lambda x, v: self._eps(x, v, source, invert_cond),
            )
        else:
            x_t, target = ism.sds_noisy_latents(z0, self.alphas, t, noise=noise)

        # Step 4: every text branch in one UNet call: [unconditional, positive, Perp-Neg negatives..., and for DDS
        # the source image's unconditional (unless it is the source prompt itself) and source branches].
        pos = self.positive_embeddings(azimuth_deg)  # [B, L, D]
        neg = self.unconditional_embeddings(azimuth_deg)  # [B, L, D]
        xs, branches = [x_t, x_t], [neg, pos]
        if c.perp_neg:
            weights, front_half, _ = perpneg.perpneg_weights(azimuth_deg.cpu(), c.negative_w, c.front_decay, c.side_decay)
            negs = perpneg.perpneg_negatives(front_half, self.e_front, self.e_side)  # [B, 2, L, D]
            xs, branches = xs + [x_t, x_t], branches + [negs[:, 0], negs[:, 1]]
        if c.method == "dds":
            if reference_latents is None:
                raise ValueError("guidance 'dds' needs the source images (reference) at the same views")
            x_ref = ism.add_noise(reference_latents, noise, self.alphas[t])  # [B, C, h, w], same ε and t
            if self.source_is_unconditional:  # CFG of the source branch is then just ε(x̂_t, source)
                xs, branches = xs + [x_ref], branches + [source]
            else:
                xs, branches = xs + [x_ref, x_ref], branches + [neg, source]
        n = len(branches)
        eps = self._eps(torch.cat(xs), t, torch.cat(branches), cond).view(n, B, *x_t.shape[1:])
        eps_negs = eps[2:4].transpose(0, 1) if c.perp_neg else None  # [B, 2, C, h, w]
        eps_hat = perpneg.guided_noise(
            eps[0], eps[1], c.guidance_scale, eps_negs, to_device(weights, z0.device) if c.perp_neg else None
        )
        if c.method == "dds":
            target = eps[-1] if self.source_is_unconditional else perpneg.guided_noise(eps[-2], eps[-1], c.guidance_scale)
        return ism.score_gradient(eps_hat, target, self.alphas[t], c.lambda_guidance, c.weighting)

    def latent_loss(
        self,
        z0: torch.Tensor,
        azimuth_deg: torch.Tensor,
        step: int,
        generator: torch.Generator,
        cond: dict | None = None,
        reference_latents: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict]:
        """Latents z0 [B, C, h, w] (with grad) → (loss, logs); for callers that optimise latents directly."""
        interval = self.sample_interval(step, generator)
        noise = to_device(torch.randn(z0.shape, generator=generator), z0.device, z0.dtype)
        grad = self.latent_gradient(z0.detach(), azimuth_deg, interval, noise, cond, reference_latents)
        return ism.latent_loss(z0, grad), {"t": interval.t, "s": interval.s}

    def loss(
        self,
        images: torch.Tensor,
        azimuth_deg: torch.Tensor,
        step: int,
        generator: torch.Generator,
        cond: dict | None = None,
        reference: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict]:
        """images [B, 3, H, W] in [0, 1] (with grad) → (loss, logs). Step 6: the gradient reaches z0 exactly.
        In the refinement stage (`refining(step)`) the loss is instead the squared error to `refined_images`.

        `reference` [B, 3, H, W]: images of the source at the same views (for 'dds'). `cond`: ControlNet conditioning,
        {"image": [B, 3, H, W] in [0, 1] (one per view), "scale": float, "in_inversion": bool (default True)}.
        """
        if self.refining(step):
            target = self.refined_images(images.detach(), azimuth_deg, generator, cond)  # [B, 3, H, W]
            return self.refinement_loss(images, target), {"t": 0, "s": 0}
        z0 = self.prior.encode_images(images, generator=generator)  # [B, C, h, w], differentiable
        ref = None
        if reference is not None:
            with torch.no_grad():
                ref = self.prior.encode_images(reference, generator=generator)  # [B, C, h, w]
        return self.latent_loss(z0, azimuth_deg, step, generator, cond, ref)
