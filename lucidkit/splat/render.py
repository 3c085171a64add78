"""Rasterise 3D Gaussians: one API, two backends.

`render(...)` draws activated Gaussians (world-unit scales, opacities in [0, 1], wxyz quaternions) into a batch
of pinhole cameras and returns colour composited on a background, accumulated alpha and expected depth.

Backends
- ``"gsplat"``: `gsplat.rasterization` (CUDA only; its CUDA ops compile on first use, so it is imported lazily).
- ``"torch"``: `_render_torch`, a pure-torch reference that runs on CPU and CUDA and is differentiable with respect to
  every input through ordinary autograd. It follows gsplat 1.5.3's conventions so the two agree to float precision:
  EWA projection with the Jacobian's off-screen clamp (1.3x the half field of view), a 0.3 px^2 low-pass dilation of
  the 2D covariance, an opacity-aware 3.33-sigma footprint (gsplat's tight bounding box), pixel centres at
  (j + 0.5, i + 0.5), front-to-back compositing sorted by camera-space depth, alpha = min(0.999, o * exp(-sigma)),
  contributions with alpha < 1/255 skipped, and a pixel finished once its transmittance would fall to 1e-4 or below.
  (gsplat 1.5.3 clamps alpha at 0.999, not the 0.99 of the original INRIA rasteriser; we match gsplat.)
- ``"auto"``: gsplat when the inputs are on CUDA, the torch reference otherwise.

How the torch backend stays fast on CPU: it never forms the dense pixels x Gaussians table. Each visible
(camera, Gaussian) pair lists only the pixels inside its footprint box; pairs whose alpha would be skipped anyway are
dropped before any gradient is tracked; the rest are sorted by (pixel, depth) and composited with a segmented
cumulative sum of log(1 - alpha) in float64 (one sort, a handful of element-wise ops over the kept pairs, one
scatter-add per output). Cost grows with the total footprint area, not with pixels x Gaussians.

Conventions (see docs/engine.md): ``viewmats`` are world-to-camera ``[C, 4, 4]`` (OpenCV: x right, y down,
z forward), ``Ks`` pixel intrinsics ``[C, 3, 3]``, images float in [0, 1] channels-last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor

from lucidkit.cameras import CameraBatch
from lucidkit.devices import to_device
from lucidkit.errors import UserError
from lucidkit.splat.scene import activated, sh0_to_rgb

ALPHA_THRESHOLD = 1.0 / 255.0  # contributions below this alpha are skipped (gsplat, INRIA)
ALPHA_MAX = 0.999  # per-Gaussian alpha clamp (gsplat 1.5.3)
TRANSMITTANCE_MIN = 1e-4  # a pixel stops compositing once its transmittance would reach this
EPS2D = 0.3  # low-pass dilation added to the 2D covariance diagonal, in px^2
FOOTPRINT_SIGMAS = 3.33  # half-size of the footprint box in standard deviations (before opacity tightening)
DEPTH_EPS = 1e-10  # expected depth = sum(w z) / max(alpha, DEPTH_EPS), as gsplat's "ED" mode


class RenderBackendError(UserError):
    """The requested rasteriser backend cannot run here (e.g. gsplat without CUDA)."""


@dataclass
class RenderOutput:
    """What `render` returns.

    rgb: [C, H, W, 3] colour composited over the background, float in [0, 1] for colours in [0, 1].
    alpha: [C, H, W, 1] accumulated opacity (1 - final transmittance).
    depth: [C, H, W, 1] expected camera-space z depth, sum(w * z) / max(alpha, 1e-10); 0 where nothing is drawn.
    info: what gsplat's ``DefaultStrategy`` reads: ``means2d`` [C, N, 2] (pixels, a non-leaf tensor in the graph:
        call ``retain_grad()`` before backward to read its gradient), ``radii`` [C, N, 2] int32 footprint half-sizes
        in pixels (0 = culled), ``depths`` [C, N], ``width``, ``height``, ``n_cameras``, ``gaussian_ids`` (None: not
        packed), ``backend`` ("gsplat" or "torch").
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    info: dict[str, Any] = field(default_factory=dict)


def render(
    means: Tensor,  # [N, 3] world positions
    quats: Tensor,  # [N, 4] rotations, wxyz, any norm
    scales: Tensor,  # [N, 3] activated standard deviations, world units
    opacities: Tensor,  # [N] activated, in [0, 1]
    colors: Tensor,  # [N, 3] RGB in [0, 1], or [N, K, 3] SH coefficients when sh_degree is given
    viewmats: Tensor,  # [C, 4, 4] world-to-camera
    Ks: Tensor,  # [C, 3, 3] pixel intrinsics
    width: int,
    height: int,
    backgrounds: Optional[Tensor] = None,  # [C, 3] in [0, 1]; None = black
    sh_degree: Optional[int] = None,
    near: float = 0.01,
    far: float = 1e4,
    backend: str = "auto",
) -> RenderOutput:
    """Render C views of N Gaussians. Returns a `RenderOutput` (rgb, alpha, depth, info).

    With ``sh_degree`` set, ``colors`` holds SH coefficients ``[N, K, 3]`` with ``(sh_degree + 1)**2 <= K`` and the
    view colour is ``max(SH(dir) + 0.5, 0)`` with ``dir`` from the camera centre to the Gaussian (gsplat/INRIA).
    """
    _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds, sh_degree)
    if sh_degree == 0:
        # A degree-0 colour does not depend on the view, so it is evaluated once here; the backends then need no
        # camera centres (in gsplat their matrix inverse makes the host wait for the GPU, a second sync per render)
        colors, sh_degree = torch.clamp_min(sh0_to_rgb(colors[:, 0, :]), 0.0), None  # [N, 3]
    if backend == "auto":
        backend = "gsplat" if means.is_cuda else "torch"
    if backend == "gsplat":
        if not (torch.cuda.is_available() and means.is_cuda):
            raise RenderBackendError(
                "render backend 'gsplat' needs CUDA tensors on a machine with CUDA; use backend 'torch' or 'auto'"
            )
        return _render_gsplat(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds, sh_degree, near, far
        )
    if backend == "torch":
        return _render_torch(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds, sh_degree, near, far
        )
    raise RenderBackendError(f"render backend must be 'auto', 'gsplat' or 'torch', got {backend!r}")


def _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds, sh_degree):
    n = means.shape[0]
    c = viewmats.shape[0]
    expect = {
        "means": (means, (n, 3)),
        "quats": (quats, (n, 4)),
        "scales": (scales, (n, 3)),
        "opacities": (opacities, (n,)),
        "viewmats": (viewmats, (c, 4, 4)),
        "Ks": (Ks, (c, 3, 3)),
    }
    if backgrounds is not None:
        expect["backgrounds"] = (backgrounds, (c, 3))
    for name, (tensor, shape) in expect.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"render: {name} must have shape {list(shape)}, got {list(tensor.shape)}")
    if sh_degree is None:
        if tuple(colors.shape) != (n, 3):
            raise ValueError(f"render: colors must be [N, 3] RGB without sh_degree, got {list(colors.shape)}")
    elif colors.dim() != 3 or colors.shape[0] != n or colors.shape[2] != 3 or colors.shape[1] < (sh_degree + 1) ** 2:
        raise ValueError(
            f"render: colors must be [N, K>={(sh_degree + 1) ** 2}, 3] SH coefficients for sh_degree={sh_degree}, "
            f"got {list(colors.shape)}"
        )
    if width <= 0 or height <= 0:
        raise ValueError(f"render: width and height must be positive, got {width}x{height}")


# --------------------------------------------------------------------------------------------------------------------
# CUDA backend
# --------------------------------------------------------------------------------------------------------------------


def _render_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds, sh_degree,
                   near, far) -> RenderOutput:
    import gsplat  # lazy: compiles CUDA ops on first use

    out, alpha, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near, far_plane=far, sh_degree=sh_degree, packed=False, backgrounds=backgrounds,
        render_mode="RGB+ED",
    )  # out [C, H, W, 4] (rgb + expected depth), alpha [C, H, W, 1]
    info = {
        "means2d": meta["means2d"],
        "radii": meta["radii"],
        "depths": meta["depths"],
        "width": width,
        "height": height,
        "n_cameras": viewmats.shape[0],
        "gaussian_ids": None,
        "backend": "gsplat",
    }
    return RenderOutput(rgb=out[..., :3], alpha=alpha, depth=out[..., 3:4], info=info)


# --------------------------------------------------------------------------------------------------------------------
# Pure-torch reference backend
# --------------------------------------------------------------------------------------------------------------------


def _quat_to_rotmat(quats: Tensor) -> Tensor:
    """[N, 4] wxyz quaternions (any norm) -> [N, 3, 3] rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)  # [N] each
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)


def _project(means, quats, scales, opacities, viewmats, Ks, width, height, near, far):
    """EWA-project N Gaussians into C cameras (gsplat's pinhole model).

    Returns means2d [C, N, 2] (pixels), conics [C, N, 3] (upper triangle of the inverse dilated 2D covariance:
    a, b, c with sigma = 0.5 (a dx^2 + c dy^2) + b dx dy), depths [C, N] (camera z) and radii [C, N, 2] int32
    (footprint half-sizes in pixels, 0 where the Gaussian is culled).
    """
    rot = viewmats[:, :3, :3]  # [C, 3, 3]
    trans = viewmats[:, :3, 3]  # [C, 3]
    means_c = torch.einsum("cij,nj->cni", rot, means) + trans[:, None, :]  # [C, N, 3]
    x, y, z = means_c.unbind(-1)  # [C, N] each

    m = _quat_to_rotmat(quats) * scales[:, None, :]  # [N, 3, 3] = R S
    covars = m @ m.transpose(-1, -2)  # [N, 3, 3] world covariance
    covars_c = torch.einsum("cij,njk,clk->cnil", rot, covars, rot)  # [C, N, 3, 3]

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]  # [C, 1]
    in_depth = (z > near) & (z < far)  # [C, N]
    # Divide only by safe depths so culled Gaussians cannot put NaN into the backward pass.
    rz = 1.0 / torch.where(in_depth, z, torch.ones_like(z))  # [C, N]
    # The Jacobian is evaluated at the position clamped to 1.3x the half field of view (gsplat, INRIA).
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)  # [C, 1]
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    tx = torch.minimum(torch.maximum(x * rz, -lim_x_neg), lim_x_pos)  # [C, N] = clamped x / z
    ty = torch.minimum(torch.maximum(y * rz, -lim_y_neg), lim_y_pos)  # [C, N]
    zeros = torch.zeros_like(rz)
    jac = torch.stack(
        [fx * rz, zeros, -fx * tx * rz, zeros, fy * rz, -fy * ty * rz], dim=-1
    ).reshape(*rz.shape, 2, 3)  # [C, N, 2, 3]
    cov2d = jac @ covars_c @ jac.transpose(-1, -2)  # [C, N, 2, 2]
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)  # [C, N, 2]

    a = cov2d[..., 0, 0] + EPS2D  # [C, N] dilated covariance
    b = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    c = cov2d[..., 1, 1] + EPS2D
    det = a * c - b * b  # [C, N]
    valid = in_depth & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)  # [C, N, 3]

    with torch.no_grad():
        # Opacity-aware tight box (gsplat 1.5.3): alpha >= 1/255 only where sigma <= log(255 o).
        opac = opacities.detach()[None, :].expand_as(z)  # [C, N]
        visible_opac = opac >= ALPHA_THRESHOLD
        extend = torch.sqrt(2.0 * torch.log(opac.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        extend = extend.clamp_max(FOOTPRINT_SIGMAS)  # [C, N]
        rx = torch.ceil(extend * torch.sqrt(a.detach().clamp_min(0)))  # [C, N]
        ry = torch.ceil(extend * torch.sqrt(c.detach().clamp_min(0)))
        mx, my = means2d.detach().unbind(-1)
        on_screen = (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
        keep = valid & visible_opac & on_screen & ((rx > 0) | (ry > 0))  # [C, N]
        radii = torch.stack([rx, ry], dim=-1).where(keep[..., None], 0).to(torch.int32)  # [C, N, 2]
    return means2d, conics, z, radii


def _pair_indices(means2d, conics, opacities, depths, radii, width, height):
    """List the (camera-Gaussian, pixel) pairs that can contribute, sorted by pixel then depth (no gradient).

    Each visible Gaussian covers, row by row, the pixel centres where its alpha can reach 1/255: the ellipse
    sigma <= log(255 o) (widened by a hair so rounding never drops a pixel; the caller re-checks alpha exactly).

    Returns ``src`` [M] flat camera*N + gaussian index, ``pix`` [M] flat camera*H*W + row*W + col pixel index,
    ``seg_start`` [M] position of the first pair of the same pixel.
    """
    C, N = depths.shape
    device, dtype = depths.device, means2d.dtype
    with torch.no_grad():
        # Visible (camera, Gaussian) pairs ordered by camera, then front to back.
        visible = (radii > 0).any(-1)  # [C, N]
        depth_key = torch.where(visible, depths.detach(), torch.full_like(depths, float("inf")))
        order = torch.argsort(depth_key, dim=1)  # [C, N] culled ones last
        first_visible = torch.arange(N, device=device)[None, :] < visible.sum(1, keepdim=True)  # [C, N]
        cam = torch.arange(C, device=device)[:, None].expand(C, N)[first_visible]  # [V]
        flat = cam * N + order[first_visible]  # [V]

        # Rows whose pixel centre (i + 0.5) lies inside the footprint box.
        mx, my = means2d.detach().reshape(C * N, 2)[flat].unbind(1)  # [V] each
        ry = radii.reshape(C * N, 2)[flat, 1].to(dtype)  # [V]
        row_lo = torch.ceil(my - ry - 0.5).clamp_min(0)  # [V]
        row_hi = torch.floor(my + ry - 0.5).clamp_max(height - 1)  # [V]
        n_rows = (row_hi - row_lo + 1).clamp_min(0).long()  # [V]
        row_owner = torch.repeat_interleave(torch.arange(flat.shape[0], device=device), n_rows)  # [R]
        row_first = torch.cumsum(n_rows, 0) - n_rows  # [V]
        row = row_lo[row_owner] + (torch.arange(row_owner.shape[0], device=device) - row_first[row_owner])  # [R]

        # Column span of the ellipse 0.5 a dx^2 + b dx dy + 0.5 c dy^2 <= log(255 o) on each row.
        a, b, c = conics.detach().reshape(C * N, 3)[flat].unbind(1)  # [V] each
        limit = torch.log(opacities.detach()[flat % N] / ALPHA_THRESHOLD) + 1e-3  # [V]
        dy = row + 0.5 - my[row_owner]  # [R]
        a_r, b_r, c_r = a[row_owner], b[row_owner], c[row_owner]
        disc = (b_r * b_r - a_r * c_r) * dy * dy + 2.0 * a_r * limit[row_owner]  # [R]
        half = torch.sqrt(disc.clamp_min(0)) / a_r
        centre = mx[row_owner] - b_r * dy / a_r  # [R] column (in image x) of the span's midpoint
        col_lo = torch.ceil(centre - half - 0.5).clamp_min(0)  # [R]
        col_hi = torch.floor(centre + half - 0.5).clamp_max(width - 1)  # [R]
        n_cols = torch.where(disc >= 0, col_hi - col_lo + 1, torch.zeros_like(disc)).clamp_min(0).long()  # [R]

        # One entry per (Gaussian, pixel), then a stable sort by pixel: entries already run camera by camera,
        # front to back, so each pixel's entries stay in depth order.
        n_pixels = C * height * width
        index_dtype = torch.int32 if n_pixels < 2**31 else torch.int64  # int32 sorts about twice as fast
        row_src = flat[row_owner]  # [R]
        row_pix0 = (row_src // N) * (height * width) + row.long() * width + col_lo.long()  # [R] first pixel
        pair_row = torch.repeat_interleave(torch.arange(row_owner.shape[0], device=device), n_cols)  # [M]
        pair_first = torch.cumsum(n_cols, 0) - n_cols  # [R]
        pix = (row_pix0 - pair_first)[pair_row] + torch.arange(pair_row.shape[0], device=device)  # [M]
        pix, perm = torch.sort(pix.to(index_dtype), stable=True)
        pix = pix.long()  # index_add is much slower with int32 indices
        src = row_src[pair_row[perm]]  # [M]

        # Where each pixel's run of entries begins.
        counts = torch.bincount(pix, minlength=n_pixels)  # [C*H*W]
        seg_start = (torch.cumsum(counts, 0) - counts)[pix]  # [M]
    return src, pix, seg_start


def _render_torch(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds=None,
                  sh_degree=None, near=0.01, far=1e4) -> RenderOutput:
    """Pure-torch reference rasteriser (CPU or CUDA), differentiable with respect to every input."""
    C, N = viewmats.shape[0], means.shape[0]
    H, W = height, width
    means2d, conics, depths, radii = _project(means, quats, scales, opacities, viewmats, Ks, W, H, near, far)

    if sh_degree is None:
        rgb_cn = colors[None].expand(C, N, 3)  # [C, N, 3]
    else:
        from gsplat.cuda._torch_impl import _spherical_harmonics  # pure torch, runs on CPU

        campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
        dirs = means[None, :, :] - campos[:, None, :]  # [C, N, 3]
        coeffs = colors[None].expand(C, *colors.shape)  # [C, N, K, 3]
        rgb_cn = torch.clamp_min(_spherical_harmonics(sh_degree, dirs, coeffs) + 0.5, 0.0)  # [C, N, 3]

    # One table of everything a pair needs, gathered once per pair: mean2d, conic, opacity, rgb, depth.
    table = torch.cat(
        [means2d, conics, opacities[None, :, None].expand(C, N, 1), rgb_cn, depths[..., None]], dim=-1
    ).reshape(C * N, 10)  # [C*N, 10]

    src, pix, seg_start = _pair_indices(means2d, conics, opacities, depths, radii, W, H)
    # unbind (not column slicing) so the backward pass assembles one [M, 10] gradient instead of ten.
    mx, my, con_a, con_b, con_c, opac, red, green, blue, z = table.index_select(0, src).unbind(1)  # [M] each
    in_image = pix % (H * W)  # [M]
    px = (in_image % W).to(mx.dtype) + 0.5  # [M] pixel centres
    py = (in_image // W).to(mx.dtype) + 0.5
    dx, dy = px - mx, py - my
    sigma = 0.5 * (con_a * dx * dx + con_c * dy * dy) + con_b * dx * dy  # [M]
    alpha = torch.clamp_max(opac * torch.exp(-sigma), ALPHA_MAX)  # [M]
    with torch.no_grad():
        drawn = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)  # [M] gsplat skips the rest
    alpha = alpha * drawn

    # Front-to-back transmittance: segmented exclusive cumulative sum of log(1 - alpha), in float64 because the
    # running sum spans every pixel of the batch.
    log_keep = torch.log1p(-alpha.double())  # [M]
    running = torch.cumsum(log_keep, 0)  # [M]
    before_segment = (running - log_keep)[seg_start]  # [M] running sum just before the pixel's first pair
    log_t_after = running - before_segment  # [M] log transmittance after this pair
    with torch.no_grad():
        alive = log_t_after > math.log(TRANSMITTANCE_MIN)  # gsplat stops before the pair that would end the pixel
    weight = alpha * torch.exp(log_t_after - log_keep).to(alpha.dtype) * alive  # [M] alpha * T_before

    # Scatter-add rgb, depth and alpha per pixel.
    values = torch.stack([red * weight, green * weight, blue * weight, z * weight, weight], dim=1)  # [M, 5]
    acc = torch.zeros(C * H * W, 5, dtype=values.dtype, device=values.device).index_add(0, pix, values)
    acc = acc.reshape(C, H, W, 5)
    acc_alpha = acc[..., 4:5]  # [C, H, W, 1]
    rgb = acc[..., 0:3]  # [C, H, W, 3]
    if backgrounds is not None:
        rgb = rgb + (1.0 - acc_alpha) * backgrounds[:, None, None, :]
    depth = acc[..., 3:4] / acc_alpha.clamp_min(DEPTH_EPS)  # [C, H, W, 1]

    info = {
        "means2d": means2d,
        "radii": radii,
        "depths": depths,
        "width": W,
        "height": H,
        "n_cameras": C,
        "gaussian_ids": None,
        "backend": "torch",
        "n_pairs": int(pix.shape[0]),
    }
    return RenderOutput(rgb=rgb, alpha=acc_alpha, depth=depth, info=info)


def render_state(splats, cams: CameraBatch, backgrounds: torch.Tensor | None, scale_mult: float = 1.0) -> RenderOutput:
    """Render the scene's Gaussians from `cams` (any device: follows the parameters)."""
    a = activated(splats)
    device = a["means"].device
    return render(
        a["means"], a["quats"], a["scales"] * scale_mult, a["opacities"], a["sh"],
        to_device(cams.viewmats, device), to_device(cams.Ks, device), cams.width, cams.height,
        backgrounds=None if backgrounds is None else to_device(backgrounds, device), sh_degree=a["sh_degree"],
    )
