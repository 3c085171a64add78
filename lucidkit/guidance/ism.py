"""Interval Score Matching and SDS: the functional core (pure tensor maths, no models, no state).

Symbols (see docs and LucidDreamer, arXiv 2311.11284):
    z0            latents of the rendered views                                 [B, C, h, w]
    ᾱ_v           alphas_cumprod at timestep value v
    eps_fn        ε(x, v, e): the prior's noise prediction                       [B, C, h, w]
    ∅             embedding of the empty prompt (used for inversion)
    DDIM a → b    x̂0 = (x - sqrt(1-ᾱ_a) ε) / sqrt(ᾱ_a);   x_b = sqrt(ᾱ_b) x̂0 + sqrt(1-ᾱ_b) ε

One ISM update (steps numbered as in docs/ism.md):
    2. x_s = DDIM-invert(z0) from the first timestep up to s with ∅ (fresh noise first perturbs z0 to the start)
    3. e_s = ε(x_s, s, ∅);  x_t = DDIM(x_s, e_s, s → t);  e_s is also the target
    4. ε̂ = CFG / Perp-Neg combination of ε(x_t, t, ·)   (done by the caller, see `perpneg.py`)
    5. grad = λ · w(t) · (ε̂ - e_s),  w(t) = sqrt((1-ᾱ_t)/ᾱ_t);  NaN/inf → 0
    6. loss = 0.5 · Σ (z0 - stopgrad(z0 - grad))²   (a sum: d loss / d z0 = grad)

SDS replaces 2–3 by x_t = sqrt(ᾱ_t) z0 + sqrt(1-ᾱ_t) ε with target ε.
"""

from __future__ import annotations

from typing import Callable

import torch

from lucidkit.guidance.schedules import inversion_timesteps

EpsFn = Callable[[torch.Tensor, int], torch.Tensor]  # (x [B,C,h,w], timestep value) -> ε [B,C,h,w]


def ddim_step(x: torch.Tensor, eps: torch.Tensor, alpha_from: torch.Tensor, alpha_to: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from ᾱ_from to ᾱ_to; upward when ᾱ_to < ᾱ_from (inversion)."""
    x0_hat = (x - (1 - alpha_from).sqrt() * eps) / alpha_from.sqrt()  # [B, C, h, w]
    return alpha_to.sqrt() * x0_hat + (1 - alpha_to).sqrt() * eps


def add_noise(z0: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Forward diffusion q(x_v | z0): sqrt(ᾱ) z0 + sqrt(1-ᾱ) ε."""
    return alpha.sqrt() * z0 + (1 - alpha).sqrt() * noise


def ddim_invert(
    z0: torch.Tensor,
    eps_empty: EpsFn,
    alphas_cumprod: torch.Tensor,
    s: int,
    *,
    noise: torch.Tensor,
    stride: int,
    max_steps: int,
    first_timestep: int = 1,
) -> torch.Tensor:
    """Step 2: x_s by DDIM inversion with the empty prompt, at most `max_steps` UNet calls.

    Like the release, z0 is first perturbed with `noise` to the start of the walk (timestep 1 when the budget
    reaches down to it), then walked up in strides of `stride` to `s`.
    """
    points = inversion_timesteps(s, first_timestep, stride, max_steps)
    x = add_noise(z0, noise, alphas_cumprod[points[0]])
    for a, b in zip(points[:-1], points[1:]):
        x = ddim_step(x, eps_empty(x, a), alphas_cumprod[a], alphas_cumprod[b])
    return x


def ism_noisy_latents(
    z0: torch.Tensor,
    eps_empty: EpsFn,
    alphas_cumprod: torch.Tensor,
    t: int,
    s: int,
    *,
    noise: torch.Tensor,
    xs_stride: int,
    xs_max_steps: int,
    first_timestep: int = 1,
    eps_invert: EpsFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 2–3 of ISM: returns (x_t, e_s) where e_s = ε(x_s, s, ∅) is both the step and the target.

    `eps_invert` (default `eps_empty`) runs the inversion steps: the same prompt, but it may leave out a ControlNet
    condition that the target keeps."""
    x_s = ddim_invert(
        z0, eps_invert or eps_empty, alphas_cumprod, s,
        noise=noise, stride=xs_stride, max_steps=xs_max_steps, first_timestep=first_timestep,
    )  # [B, C, h, w]
    e_s = eps_empty(x_s, s)
    x_t = ddim_step(x_s, e_s, alphas_cumprod[s], alphas_cumprod[t])
    return x_t, e_s


def sds_noisy_latents(
    z0: torch.Tensor, alphas_cumprod: torch.Tensor, t: int, *, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The SDS baseline: x_t = sqrt(ᾱ_t) z0 + sqrt(1-ᾱ_t) ε, target ε."""
    return add_noise(z0, noise, alphas_cumprod[t]), noise


def weight(alpha_t: torch.Tensor, kind: str = "ism") -> torch.Tensor:
    """w(t): "ism" = sqrt((1-ᾱ_t)/ᾱ_t) (the recipe, also used for SDS by default); "dreamfusion" = 1-ᾱ_t."""
    if kind == "ism":
        return ((1 - alpha_t) / alpha_t).sqrt()
    if kind == "dreamfusion":
        return 1 - alpha_t
    raise ValueError(f"unknown weighting {kind!r}; expected 'ism' or 'dreamfusion'")


def score_gradient(
    eps_hat: torch.Tensor, target: torch.Tensor, alpha_t: torch.Tensor, scale: float, weighting: str = "ism"
) -> torch.Tensor:
    """Step 5: grad = λ · w(t) · (ε̂ - target) with NaN/inf replaced by 0."""
    grad = scale * weight(alpha_t, weighting) * (eps_hat - target)  # [B, C, h, w]
    return torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)


def latent_loss(z0: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Step 6: 0.5 · Σ (z0 - stopgrad(z0 - grad))², whose gradient w.r.t. z0 is exactly `grad`."""
    target = (z0 - grad).detach()
    return 0.5 * ((z0 - target) ** 2).sum()
