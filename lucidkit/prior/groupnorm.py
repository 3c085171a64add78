"""GroupNorm written for the channels-last layout (used by the CUDA fast path; the same function as nn.GroupNorm).

A GroupNorm reduces over each group's C/G channels × all pixels. In the channels-last layout those channels are
short runs of C/G values, C apart, so a fused reduction over a group reads memory in scattered 8-byte pieces:
that is why the compiled VAE ran faster in the contiguous layout even though cuDNN then transposes every
convolution's input and output (NCHW -> NHWC -> NCHW, ~10 ms of each 39 ms encoder forward+backward on an
H100, docs/performance.md). Here the statistics are taken per channel first — a reduction over pixels, which
reads whole rows of C channels — and then combined per group exactly (law of total variance: the channels of
a group have the same number of pixels). The result is the same GroupNorm, up to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn


def group_norm_channels_last(x: torch.Tensor, groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
                             eps: float) -> torch.Tensor:
    """F.group_norm(x, groups, weight, bias, eps) for x [N, C, *spatial], statistics in float32."""
    n, c = x.shape[:2]
    xf = x.float().flatten(2)  # [N, C, P]; in the channels-last layout, P is the outer axis in memory
    var_c, mean_c = torch.var_mean(xf, dim=2, unbiased=False)  # [N, C]: per-channel statistics
    mean_g = mean_c.view(n, groups, -1).mean(-1, keepdim=True)  # [N, G, 1]
    var_g = (var_c.view(n, groups, -1) + (mean_c.view(n, groups, -1) - mean_g) ** 2).mean(-1, keepdim=True)
    scale = torch.rsqrt(var_g + eps).expand(n, groups, c // groups).reshape(n, c)  # [N, C]
    shift = -mean_g.expand(n, groups, c // groups).reshape(n, c) * scale
    if weight is not None:
        scale, shift = scale * weight.float(), shift * weight.float()
    if bias is not None:
        shift = shift + bias.float()
    view = (n, c) + (1,) * (x.dim() - 2)
    return (xf.view_as(x) * scale.view(view) + shift.view(view)).to(x.dtype)


class ChannelsLastGroupNorm(nn.Module):
    """Drop-in for an nn.GroupNorm, sharing its parameters."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.num_groups, self.num_channels, self.eps, self.affine = norm.num_groups, norm.num_channels, norm.eps, norm.affine
        self.weight, self.bias = norm.weight, norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return group_norm_channels_last(x, self.num_groups, self.weight, self.bias, self.eps)


def use_channels_last_group_norm(model: nn.Module) -> int:
    """Replace every nn.GroupNorm inside `model` by ChannelsLastGroupNorm; returns how many were replaced."""
    targets = [(name, m) for name, m in model.named_modules() if type(m) is nn.GroupNorm]
    for name, norm in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, ChannelsLastGroupNorm(norm))
    return len(targets)
