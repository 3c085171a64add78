"""GroupNorm written for the channels-last layout (used by the CUDA fast path; the same function as nn.GroupNorm).

A GroupNorm reduces over each group's C/G channels × all pixels. In the channels-last layout those channels are
short runs of C/G values, C apart, so a fused reduction over a group reads memory in scattered 8-byte pieces:
that is why the compiled VAE ran faster in the contiguous layout even though cuDNN then transposes every
convolution's input and output (NCHW -> NHWC -> NCHW, ~10 ms of each 39 ms encoder forward+backward, see
bench/results/levers.md). Here the statistics are taken per channel first — a reduction over pixels, which
reads whole rows of C channels — and then combined per group exactly (law of total variance: the channels of
a group have the same number of pixels). The result is the same GroupNorm, up to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn


def _wide(t: torch.Tensor) -> torch.Tensor:
    """t in float32, or in its own dtype if that is wider (float64: exact gradient checks)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def group_statistics(x: torch.Tensor, groups: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each group's mean and 1/std in float32 (or x's wider dtype), repeated for each of its channels: [N, C] each."""
    n, c = x.shape[:2]
    var_c, mean_c = torch.var_mean(_wide(x).flatten(2), dim=2, unbiased=False)  # [N, C]: per-channel statistics
    mean_g = mean_c.view(n, groups, -1).mean(-1, keepdim=True)  # [N, G, 1]
    var_g = (var_c.view(n, groups, -1) + (mean_c.view(n, groups, -1) - mean_g) ** 2).mean(-1, keepdim=True)
    per_channel = lambda g: g.expand(n, groups, c // groups).reshape(n, c)
    return per_channel(mean_g), per_channel(torch.rsqrt(var_g + eps))


def group_norm_channels_last(x: torch.Tensor, groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
                             eps: float) -> torch.Tensor:
    """F.group_norm(x, groups, weight, bias, eps) for x [N, C, *spatial], computed in float32 (float64 stays)."""
    n, c = x.shape[:2]
    mean, scale = group_statistics(x, groups, eps)
    shift = -mean * scale
    if weight is not None:
        scale, shift = scale * _wide(weight), shift * _wide(weight)
    if bias is not None:
        shift = shift + _wide(bias)
    view = (n, c) + (1,) * (x.dim() - 2)
    return (_wide(x) * scale.view(view) + shift.view(view)).to(x.dtype)


class _FrozenGroupNormSiLU(torch.autograd.Function):
    """silu(group_norm(x)) (or the GroupNorm alone) for frozen γ, β, with a hand-written input gradient.

    Autograd of the composed functions keeps, or recomputes through float32 copies, more full-size tensors than
    needed; this backward reads only x, the incoming gradient and the [N, C] statistics: one reduction pass for
    the two group sums, one pointwise pass for dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)), with ĝ = γ · dy
    (dy through the SiLU first, its input recomputed from x) and each mean over an image's group.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, eps: float, silu: bool):
        mean, rstd = group_statistics(x, groups, eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.groups, ctx.silu = groups, silu
        view = x.shape[:2] + (1,) * (x.dim() - 2)
        scale = rstd * _wide(weight)
        y = _wide(x) * scale.view(view) + (_wide(bias) - mean * scale).view(view)
        return (nn.functional.silu(y) if silu else y).to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        n, c = x.shape[:2]
        view, pixels = (n, c) + (1,) * (x.dim() - 2), tuple(range(2, x.dim()))
        xhat = (_wide(x) - mean.view(view)) * rstd.view(view)
        w = _wide(weight).view((1, c) + (1,) * (x.dim() - 2))
        dy = _wide(dy)
        if ctx.silu:
            pre = xhat * w + _wide(bias).view_as(w)
            s = torch.sigmoid(pre)
            dy = dy * s * (1 + pre * (1 - s))
        g = dy * w
        per_group = c // ctx.groups * x[0, 0].numel()  # elements in one image's group

        def group_mean(t):  # [N, C, ...] -> each group's mean, per channel [N, C, 1, ...]
            s = t.sum(pixels).view(n, ctx.groups, -1).sum(-1, keepdim=True) / per_group
            return s.expand(n, ctx.groups, c // ctx.groups).reshape(view)

        dx = rstd.view(view) * (g - group_mean(g) - xhat * group_mean(g * xhat))
        return dx.to(x.dtype), None, None, None, None, None


class ChannelsLastGroupNorm(nn.Module):
    """Drop-in for an nn.GroupNorm, sharing its parameters; with `silu`, for the GroupNorm and the SiLU after it.
    With frozen affine parameters (the VAE's) and `hand_backward` it runs `_FrozenGroupNormSiLU`, otherwise the
    composed functions."""

    def __init__(self, norm: nn.GroupNorm, silu: bool = False, hand_backward: bool = True):
        super().__init__()
        self.num_groups, self.num_channels, self.eps, self.affine = norm.num_groups, norm.num_channels, norm.eps, norm.affine
        self.weight, self.bias = norm.weight, norm.bias
        self.silu, self.hand_backward = silu, hand_backward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hand_backward and self.affine and not (self.weight.requires_grad or self.bias.requires_grad):
            return _FrozenGroupNormSiLU.apply(x, self.weight, self.bias, self.num_groups, self.eps, self.silu)
        y = group_norm_channels_last(x, self.num_groups, self.weight, self.bias, self.eps)
        return nn.functional.silu(y) if self.silu else y


def use_channels_last_group_norm(model: nn.Module, fuse: bool = True) -> int:
    """Replace every nn.GroupNorm inside `model` by ChannelsLastGroupNorm; returns how many were replaced.

    Where a GroupNorm is always followed by a SiLU — diffusers' ResnetBlock2D without a time embedding (norm1 and
    norm2, each then its `nonlinearity`) and the VAE encoder's output norm (`conv_norm_out`, then `conv_act`) —
    the replacement does both, and the SiLU module becomes an Identity. `fuse=False`: GroupNorms alone, composed
    functions (the fast path before bench/results/levers.md round 12).
    """
    for block in list(model.modules()) if fuse else []:
        pairs = []
        if (isinstance(getattr(block, "nonlinearity", None), nn.SiLU) and getattr(block, "time_emb_proj", 1) is None
                and getattr(block, "time_embedding_norm", "default") == "default"):
            pairs = [("norm1", "nonlinearity"), ("norm2", "nonlinearity")]
        elif isinstance(getattr(block, "conv_act", None), nn.SiLU):
            pairs = [("conv_norm_out", "conv_act")]
        if pairs and all(type(getattr(block, norm, None)) is nn.GroupNorm for norm, _ in pairs):
            for norm, act in pairs:
                setattr(block, norm, ChannelsLastGroupNorm(getattr(block, norm), silu=True))
                setattr(block, act, nn.Identity())
    targets = [(name, m) for name, m in model.named_modules() if type(m) is nn.GroupNorm]
    for name, norm in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child,
                ChannelsLastGroupNorm(norm, hand_backward=fuse))
    return sum(isinstance(m, ChannelsLastGroupNorm) for m in model.modules())
