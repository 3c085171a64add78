"""Image-space regularisers of a render: the recipe's total variation of the RGB and of a normalised disparity, and
the binary entropy of the alpha (against translucent halos)."""

from __future__ import annotations

import torch


def total_variation(img: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels; img [B, H, W, C]."""
    return (img[:, 1:] - img[:, :-1]).abs().mean() + (img[:, :, 1:] - img[:, :, :-1]).abs().mean()


def alpha_entropy(alpha: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Mean binary entropy of the rendered alpha [B, H, W, 1]: 0 where a pixel is empty or fully covered, largest
    (ln 2) at alpha 0.5, so minimising it removes half-transparent pixels."""
    a = alpha.clamp(eps, 1 - eps)
    return -(a * a.log() + (1 - a) * (1 - a).log()).mean()


def image_regularizers(rgb: torch.Tensor, depth: torch.Tensor, alpha: torch.Tensor, tv_rgb: float,
                       tv_disparity: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe's image-space terms of a render [B, H, W, ·]: (normalised disparity [B, H, W, 1],
    tv_rgb·TV(rgb) + tv_disparity·TV(disparity)). One function, so that the compiled fast path runs its ~40 small
    operations (and their backward) as a few fused kernels."""
    disparity = normalized_disparity(depth, alpha)
    loss = torch.zeros((), device=rgb.device)
    if tv_rgb:
        loss = loss + tv_rgb * total_variation(rgb)
    if tv_disparity:
        loss = loss + tv_disparity * total_variation(disparity)
    return disparity, loss


def normalized_disparity(depth: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """[B, H, W, 1] disparity scaled to [0, 1] over each view's covered pixels, 0 on the background."""
    mask = alpha > 0.5
    disp = torch.where(mask, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
    big = torch.finfo(disp.dtype).max
    lo = torch.where(mask, disp, torch.full_like(disp, big)).amin(dim=(1, 2, 3), keepdim=True)
    hi = disp.amax(dim=(1, 2, 3), keepdim=True)
    norm = (disp - lo) / (hi - lo).clamp_min(1e-6)
    return torch.where(mask, norm, torch.zeros_like(norm)) * alpha

