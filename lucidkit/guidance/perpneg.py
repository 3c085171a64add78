"""View-dependent prompts, classifier-free guidance and Perp-Neg (functional).

Azimuth a in degrees, a = 0 is the front, wrapped to [-180, 180).
    |a| < 90:  r = 1 - |a|/90,         e_pos = r·e_front + (1-r)·e_side,  negatives (front, side)
    else:      r = 1 - (|a|-90)/90,    e_pos = r·e_side  + (1-r)·e_back,  negatives (side, front)
Perp-Neg with δ_i = ε(x_t, e_i) - ε_u and ε_u = ε(x_t, e_neg) (the negative prompt is the unconditional branch):
    δ = δ_pos + Σ_i w_i · (δ_i - proj_{δ_pos} δ_i)   (projection over each view's whole flattened latent)
    ε̂ = ε_u + g·δ
Weights (negative_w = -2, front_decay = 2, side_decay = 10):
    front half: w_front = 0 if r > 0.8 else negative_w·e^(-front_decay·r)
                w_side  = 0 if r < 0.2 else negative_w·e^(-side_decay·(1-r))
    back half:  w_side  = 0 if r > 0.8 else (negative_w/2)·e^(-side_decay·r);   w_front = negative_w
"""

from __future__ import annotations

import math

import torch

from lucidkit.devices import to_device


def wrap_azimuth(azimuth_deg: torch.Tensor) -> torch.Tensor:
    """Wrap degrees to [-180, 180)."""
    return torch.remainder(azimuth_deg + 180.0, 360.0) - 180.0


def view_ratio(azimuth_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(front_half [B] bool, r [B] in [0, 1]) for each view."""
    a = wrap_azimuth(azimuth_deg).abs()  # [B]
    front_half = a < 90
    r = torch.where(front_half, 1 - a / 90, 1 - (a - 90) / 90)
    return front_half, r


def view_embeddings(
    azimuth_deg: torch.Tensor, e_front: torch.Tensor, e_side: torch.Tensor, e_back: torch.Tensor,
    interpolate: bool = True,
) -> torch.Tensor:
    """Positive embeddings [B, L, D] from the three view embeddings [L, D] (or [1, L, D]).

    interpolate=False picks one view per camera instead (DreamFusion's suffixes): front for |a| <= 45,
    back for |a| >= 135, side between -- the rule captions of view-labelled training data usually follow.
    """
    e_front, e_side, e_back = (e.reshape(e.shape[-2:]) for e in (e_front, e_side, e_back))
    front_half, r = view_ratio(to_device(azimuth_deg, e_front.device))
    if not interpolate:
        r = (r >= 0.5).to(r.dtype)  # front half: |a| <= 45 -> front; back half: |a| <= 135 -> side
    r = r.to(e_front.dtype)[:, None, None]  # [B, 1, 1]
    front = r * e_front + (1 - r) * e_side  # [B, L, D]
    back = r * e_side + (1 - r) * e_back
    return torch.where(front_half[:, None, None], front, back)


def perpneg_weights(
    azimuth_deg: torch.Tensor, negative_w: float = -2.0, front_decay: float = 2.0, side_decay: float = 10.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per view: (w [B, 2], is_front_half [B]) and the negatives' identities.

    Returns `(weights [B, 2], front_half [B], r [B])`. Column 0 weights the first negative, column 1 the second:
    front half → (front, side), back half → (side, front).
    """
    front_half, r = view_ratio(azimuth_deg)
    w = torch.zeros(len(r), 2, dtype=torch.float64)
    for i, (fh, ri) in enumerate(zip(front_half.tolist(), r.double().tolist())):
        if fh:
            w[i, 0] = 0.0 if ri > 0.8 else negative_w * math.exp(-front_decay * ri)
            w[i, 1] = 0.0 if ri < 0.2 else negative_w * math.exp(-side_decay * (1 - ri))
        else:
            w[i, 0] = 0.0 if ri > 0.8 else negative_w / 2 * math.exp(-side_decay * ri)
            w[i, 1] = negative_w
    return w, front_half, r


def perpneg_negatives(
    front_half: torch.Tensor, e_front: torch.Tensor, e_side: torch.Tensor
) -> torch.Tensor:
    """The two negative embeddings per view, [B, 2, L, D], ordered as `perpneg_weights`' columns."""
    e_front, e_side = (e.reshape(e.shape[-2:]) for e in (e_front, e_side))
    first = torch.where(front_half[:, None, None].to(e_front.device), e_front, e_side)  # [B, L, D]
    second = torch.where(front_half[:, None, None].to(e_front.device), e_side, e_front)
    return torch.stack([first, second], dim=1)


def perpendicular(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x minus its projection on y, per sample over all non-batch dims. x, y: [B, ...]."""
    xf, yf = x.flatten(1), y.flatten(1)  # [B, M]
    coef = (xf * yf).sum(1, keepdim=True) / (yf * yf).sum(1, keepdim=True).clamp_min(1e-12)
    return (xf - coef * yf).view_as(x)


def guided_noise(
    eps_uncond: torch.Tensor,
    eps_pos: torch.Tensor,
    scale: float,
    eps_negs: torch.Tensor | None = None,
    neg_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """ε̂ = ε_u + g·δ. Plain CFG when `eps_negs` is None, else Perp-Neg with `eps_negs [B, K, C, h, w]`
    and `neg_weights [B, K]`."""
    delta = eps_pos - eps_uncond  # [B, C, h, w]
    if eps_negs is not None:
        delta_pos = delta
        for k in range(eps_negs.shape[1]):
            delta_k = eps_negs[:, k] - eps_uncond
            w = neg_weights[:, k].to(delta.dtype).view(-1, *([1] * (delta.dim() - 1)))
            delta = delta + w * perpendicular(delta_k, delta_pos)
    return eps_uncond + scale * delta
