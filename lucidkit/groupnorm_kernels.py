"""GroupNorm (+ SiLU) on channels-last CUDA tensors as four Triton kernels that move the fewest bytes.

The fast path's VAE encoder runs forward and backward at 512² (B = 4) through ~2 GB of GroupNorm inputs. Compiled
from PyTorch ops, its GroupNorm/SiLU kernels move ~31 GB per update at ~2.2 TB/s (bench/results/levers.md, round
9): near the memory bandwidth, but about twice the bytes that GroupNorm + SiLU need. The least is:

  forward   read x (statistics), read x and write y (normalise + SiLU)             3 passes
  backward  read x and dy (two sums per group), read x and dy and write dx         5 passes

which these kernels do. The frozen affine weights get no gradient (the op refuses weights that require one; the
caller falls back to `group_norm_channels_last`). Statistics are taken per channel over tiles of pixels — each
tile is a [pixels, C] block of contiguous channel rows — and combined per group exactly (Chan's formula for the
variance), so a large mean does not cancel the variance. `group_norm_silu` is a `torch.library` op with its own
autograd formula: torch.compile treats it as one opaque call, and CUDA graphs capture it.

x = normalised input, z = γ·x̂ + β, y = SiLU(z) (or z).  With dz = dy·SiLU'(z) and per-group means over the
group's channels and pixels, dx = rstd·(γ·dz − mean(γ·dz) − x̂·mean(γ·dz·x̂)), which is a per-channel linear
function of (dz, x): dx = a·dz + k1·x + k0.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# launch parameters, module attributes so that bench/loop_levers.py can sweep them
TILE = 8192  # elements per tile: BLOCK_P pixels × C channels (padded to a power of two)
WARPS = 8
REDUCE_PROGRAMS = 256  # programs per image for the two reductions (each loops over several tiles)


@triton.jit
def _channel_stats(X, SUM, M2, P, C, nblocks, C_PAD: tl.constexpr, BLOCK_P: tl.constexpr, ITERS: tl.constexpr):
    """Per program (ITERS tiles of BLOCK_P pixels): each channel's sum and sum of squared deviations from its mean,
    merged tile by tile with Chan's formula."""
    pb, n = tl.program_id(0), tl.program_id(1)
    cols = tl.arange(0, C_PAD)
    count = 0.0
    mean = tl.zeros([C_PAD], dtype=tl.float32)
    m2 = tl.zeros([C_PAD], dtype=tl.float32)
    for i in range(ITERS):
        first = (pb * ITERS + i) * BLOCK_P
        rows = first + tl.arange(0, BLOCK_P)
        mask = (rows[:, None] < P) & (cols[None, :] < C)
        x = tl.load(X + n.to(tl.int64) * P * C + rows[:, None] * C + cols[None, :], mask=mask, other=0.0)
        x = x.to(tl.float32)
        tile_count = tl.minimum(tl.maximum(P - first, 0), BLOCK_P).to(tl.float32)
        tile_mean = tl.sum(x, axis=0) / tl.maximum(tile_count, 1.0)
        dev = tl.where(mask, x - tile_mean[None, :], 0.0)
        total = count + tile_count
        delta = tile_mean - mean
        mean += delta * (tile_count / tl.maximum(total, 1.0))
        m2 += tl.sum(dev * dev, axis=0) + delta * delta * (count * tile_count / tl.maximum(total, 1.0))
        count = total
    out = (n * nblocks + pb) * C + cols
    tl.store(SUM + out, mean * count, mask=cols < C)
    tl.store(M2 + out, m2, mask=cols < C)


@triton.jit
def _normalise(X, Y, SCALE, SHIFT, P, C, C_PAD: tl.constexpr, BLOCK_P: tl.constexpr, SILU: tl.constexpr):
    """y = SiLU(x·scale + shift) with per-(image, channel) scale and shift."""
    pb, n = tl.program_id(0), tl.program_id(1)
    rows = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    cols = tl.arange(0, C_PAD)
    mask = (rows[:, None] < P) & (cols[None, :] < C)
    offsets = n.to(tl.int64) * P * C + rows[:, None] * C + cols[None, :]
    x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
    scale = tl.load(SCALE + n * C + cols, mask=cols < C, other=0.0)
    shift = tl.load(SHIFT + n * C + cols, mask=cols < C, other=0.0)
    z = x * scale[None, :] + shift[None, :]
    if SILU:
        z = z * tl.sigmoid(z)
    tl.store(Y + offsets, z.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _grad_z(x, dy, scale, shift, SILU: tl.constexpr):
    """dL/dz from dL/dy, recomputing z = x·scale + shift."""
    if SILU:
        z = x * scale[None, :] + shift[None, :]
        sig = tl.sigmoid(z)
        return dy * sig * (1.0 + z * (1.0 - sig))
    return dy


@triton.jit
def _grad_sums(X, DY, SCALE, SHIFT, SUM_DZ, SUM_DZX, P, C, nblocks, C_PAD: tl.constexpr, BLOCK_P: tl.constexpr,
               ITERS: tl.constexpr, SILU: tl.constexpr):
    """Per program (ITERS tiles of BLOCK_P pixels): each channel's sum of dz and of dz·x."""
    pb, n = tl.program_id(0), tl.program_id(1)
    cols = tl.arange(0, C_PAD)
    scale = tl.load(SCALE + n * C + cols, mask=cols < C, other=0.0)
    shift = tl.load(SHIFT + n * C + cols, mask=cols < C, other=0.0)
    sum_dz = tl.zeros([C_PAD], dtype=tl.float32)
    sum_dzx = tl.zeros([C_PAD], dtype=tl.float32)
    for i in range(ITERS):
        rows = (pb * ITERS + i) * BLOCK_P + tl.arange(0, BLOCK_P)
        mask = (rows[:, None] < P) & (cols[None, :] < C)
        offsets = n.to(tl.int64) * P * C + rows[:, None] * C + cols[None, :]
        x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + offsets, mask=mask, other=0.0).to(tl.float32)
        dz = _grad_z(x, dy, scale, shift, SILU)  # masked lanes: dy = 0, so dz = 0
        sum_dz += tl.sum(dz, axis=0)
        sum_dzx += tl.sum(dz * x, axis=0)
    out = (n * nblocks + pb) * C + cols
    tl.store(SUM_DZ + out, sum_dz, mask=cols < C)
    tl.store(SUM_DZX + out, sum_dzx, mask=cols < C)


@triton.jit
def _grad_input(X, DY, DX, SCALE, SHIFT, A, K1, K0, P, C, C_PAD: tl.constexpr, BLOCK_P: tl.constexpr,
                SILU: tl.constexpr):
    """dx = a·dz + k1·x + k0, per-(image, channel) coefficients."""
    pb, n = tl.program_id(0), tl.program_id(1)
    rows = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    cols = tl.arange(0, C_PAD)
    mask = (rows[:, None] < P) & (cols[None, :] < C)
    offsets = n.to(tl.int64) * P * C + rows[:, None] * C + cols[None, :]
    x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
    dy = tl.load(DY + offsets, mask=mask, other=0.0).to(tl.float32)
    cm = cols < C
    scale = tl.load(SCALE + n * C + cols, mask=cm, other=0.0)
    shift = tl.load(SHIFT + n * C + cols, mask=cm, other=0.0)
    a = tl.load(A + n * C + cols, mask=cm, other=0.0)
    k1 = tl.load(K1 + n * C + cols, mask=cm, other=0.0)
    k0 = tl.load(K0 + n * C + cols, mask=cm, other=0.0)
    dz = _grad_z(x, dy, scale, shift, SILU)
    dx = a[None, :] * dz + k1[None, :] * x + k0[None, :]
    tl.store(DX + offsets, dx.to(DX.dtype.element_ty), mask=mask)


class _Plan:
    """How a channels-last tensor [N, C, *spatial] is cut: a [N, P, C] rows view, tiles of BLOCK_P pixels, grids
    for the pointwise kernels (one tile per program) and the reductions (ITERS tiles per program)."""

    def __init__(self, x: torch.Tensor):
        self.n, self.c = x.shape[:2]
        self.p = x.numel() // (self.n * self.c)
        self.c_pad = triton.next_power_of_2(self.c)
        self.block_p = max(1, min(TILE // self.c_pad, triton.next_power_of_2(self.p)))
        tiles = triton.cdiv(self.p, self.block_p)
        self.iters = triton.cdiv(tiles, REDUCE_PROGRAMS)
        self.pointwise = (tiles, self.n)
        self.reduce = (triton.cdiv(tiles, self.iters), self.n)
        # pixels covered by each reduction program (the last one may cover fewer)
        # (made on the device: no host-to-device copy, which a CUDA graph capture would refuse)
        span = self.iters * self.block_p
        self.counts = (self.p - span * torch.arange(self.reduce[0], device=x.device)).clamp(max=span).float()

    def rows(self, t: torch.Tensor) -> torch.Tensor:
        return t.permute(0, *range(2, t.dim()), 1).reshape(self.n, self.p, self.c)  # a view: NHWC memory

    def partials(self, t: torch.Tensor) -> torch.Tensor:
        return torch.empty(self.n, self.reduce[0], self.c, device=t.device, dtype=torch.float32)

    def kwargs(self, **extra) -> dict:
        return dict(C_PAD=self.c_pad, BLOCK_P=self.block_p, num_warps=WARPS, **extra)


def _per_channel(v: torch.Tensor, c: int) -> torch.Tensor:
    """[N, G] group values repeated over each group's channels: [N, C]."""
    n, g = v.shape
    return v[:, :, None].expand(n, g, c // g).reshape(n, c)


def _scale_shift(weight, bias, mean, rstd, c: int):
    """Per-(image, channel) z = x·scale + shift, float32, contiguous [N, C]."""
    w = weight.float() if weight is not None else torch.ones(c, device=mean.device)
    b = bias.float() if bias is not None else torch.zeros(c, device=mean.device)
    scale = _per_channel(rstd, c) * w
    return scale.contiguous(), (b - _per_channel(mean, c) * scale).contiguous(), w


@torch.library.custom_op("lucidkit::group_norm_silu", mutates_args=())
def _group_norm_silu(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, groups: int,
                     eps: float, silu: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (y, mean [N, G], rstd [N, G]); x channels-last, statistics in float32."""
    plan = _Plan(x)
    n, c, p = plan.n, plan.c, plan.p
    sums, m2s = plan.partials(x), plan.partials(x)
    _channel_stats[plan.reduce](plan.rows(x), sums, m2s, p, c, plan.reduce[0], **plan.kwargs(ITERS=plan.iters))
    # combine programs and channels per group exactly: M2 = Σ m2 + Σ count·(program mean − group mean)²
    per_group = (n, plan.reduce[0], groups, c // groups)
    count = p * c // groups
    mean = sums.view(per_group).sum((1, 3)) / count  # [N, G]
    part_means = (sums / plan.counts[None, :, None]).view(per_group)
    spread = plan.counts[None, :, None, None] * (part_means - mean[:, None, :, None]) ** 2
    rstd = torch.rsqrt((m2s.view(per_group).sum((1, 3)) + spread.sum((1, 3))) / count + eps)
    scale, shift, _ = _scale_shift(weight, bias, mean, rstd, c)
    y = torch.empty_like(x)  # keeps the channels-last layout
    _normalise[plan.pointwise](plan.rows(x), plan.rows(y), scale, shift, p, c, **plan.kwargs(SILU=silu))
    return y, mean, rstd


@_group_norm_silu.register_fake
def _(x, weight, bias, groups, eps, silu):
    stats = x.new_empty(x.shape[0], groups, dtype=torch.float32)
    return torch.empty_like(x), stats, torch.empty_like(stats)


@torch.library.custom_op("lucidkit::group_norm_silu_backward", mutates_args=())
def _group_norm_silu_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None,
                              bias: torch.Tensor | None, mean: torch.Tensor, rstd: torch.Tensor,
                              silu: bool) -> torch.Tensor:
    plan = _Plan(x)
    n, c, p = plan.n, plan.c, plan.p
    groups = mean.shape[1]
    dy = dy.contiguous(memory_format=torch.channels_last)
    scale, shift, w = _scale_shift(weight, bias, mean, rstd, c)
    sum_dz, sum_dzx = plan.partials(x), plan.partials(x)
    _grad_sums[plan.reduce](plan.rows(x), plan.rows(dy), scale, shift, sum_dz, sum_dzx, p, c, plan.reduce[0],
                            **plan.kwargs(ITERS=plan.iters, SILU=silu))
    # per group: m1 = mean(γ·dz), m2 = mean(γ·dz·x̂) with x̂ = (x − μ)·rstd
    count = p * c // groups
    g_dz = (sum_dz.sum(1) * w).view(n, groups, -1).sum(-1)  # [N, G]: Σ γ·dz
    g_dzx = (sum_dzx.sum(1) * w).view(n, groups, -1).sum(-1)  # Σ γ·dz·x
    m1 = g_dz / count
    m2 = (g_dzx - mean * g_dz) * rstd / count
    # dx = rstd·(γ·dz − m1 − x̂·m2) = a·dz + k1·x + k0
    a = (_per_channel(rstd, c) * w).contiguous()
    k1 = _per_channel(-rstd * rstd * m2, c).contiguous()
    k0 = _per_channel(rstd * (mean * rstd * m2 - m1), c).contiguous()
    dx = torch.empty_like(x)
    _grad_input[plan.pointwise](plan.rows(x), plan.rows(dy), plan.rows(dx), scale, shift, a, k1, k0, p, c,
                                **plan.kwargs(SILU=silu))
    return dx


@_group_norm_silu_backward.register_fake
def _(dy, x, weight, bias, mean, rstd, silu):
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output):
    x, weight, bias, _groups, _eps, silu = inputs
    _y, mean, rstd = output
    ctx.save_for_backward(x, weight, bias, mean, rstd)
    ctx.mark_non_differentiable(mean, rstd)
    ctx.silu = silu


def _backward(ctx, dy, _dmean, _drstd):
    x, weight, bias, mean, rstd = ctx.saved_tensors
    return _group_norm_silu_backward(dy, x, weight, bias, mean, rstd, ctx.silu), None, None, None, None, None


_group_norm_silu.register_autograd(_backward, setup_context=_setup_context)


def group_norm_silu(x: torch.Tensor, groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
                    eps: float, silu: bool) -> torch.Tensor:
    """F.group_norm (then SiLU if `silu`) of a channels-last CUDA tensor; no gradient for weight and bias."""
    return _group_norm_silu(x, weight, bias, groups, eps, silu)[0]
