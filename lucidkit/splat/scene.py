"""3D Gaussian parameters (gsplat layout) and their activations.

A scene is a `torch.nn.ParameterDict` of raw (pre-activation) tensors, exactly the layout gsplat's
`DefaultStrategy` edits (see docs/engine.md):

    means      [N, 3]       world position, z-up
    scales     [N, 3]       log of the per-axis standard deviation (world units)
    quats      [N, 4]       rotation quaternion, wxyz, not normalised
    opacities  [N]          logit of the opacity
    sh0        [N, 1, 3]    degree-0 spherical-harmonic colour coefficient (rgb = 0.5 + SH_C0 * sh0)
    shN        [N, K-1, 3]  higher SH coefficients, K = (degree + 1)^2 (0 rows for degree 0)

There is no scene class: optimizers and learning-rate schedules are in `optim.py`, files in `ply.py`.
"""

from __future__ import annotations

import math

import torch

SH_C0 = 0.28209479177387814
"""Degree-0 real spherical harmonic, 1 / (2 sqrt(pi)): rgb = 0.5 + SH_C0 * sh0."""

PARAM_NAMES = ("means", "scales", "quats", "opacities", "sh0", "shN")


# ----------------------------------------------------------------------------------------------------------------
# Parameters and activations
# ----------------------------------------------------------------------------------------------------------------


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per colour channel up to `degree`: (degree + 1)^2."""
    return (degree + 1) ** 2


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> degree-0 SH coefficient (same shape)."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: torch.Tensor) -> torch.Tensor:
    """Degree-0 SH coefficient -> RGB (same shape; not clipped)."""
    return sh0 * SH_C0 + 0.5


def sh_degree_of(splats: torch.nn.ParameterDict | dict) -> int:
    """SH degree of a scene, from the size of `shN` ([N, K-1, 3])."""
    k = splats["shN"].shape[1] + 1
    degree = int(round(math.sqrt(k))) - 1
    if num_sh_bases(degree) != k:
        raise ValueError(f"shN has {k - 1} coefficient rows; expected (d+1)^2 - 1 for an SH degree d")
    return degree


def knn_mean_sq_dist(means: torch.Tensor, k: int = 3, chunk_elems: int = 2**24) -> torch.Tensor:
    """Mean squared distance from each point to its `k` nearest other points, `[N]`.

    Exact brute force, processed in row chunks of about `chunk_elems` distances so memory stays bounded
    (64 MB for the default) whatever N is. Runs on the device of `means`: 100k points take ~30 s on two CPU
    cores and milliseconds on a GPU. With fewer than two points there are no neighbours and 0 is returned.
    """
    n = means.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return torch.zeros(n, dtype=means.dtype, device=means.device)
    x = means - means.mean(dim=0)  # [N, 3] centred: the |a|^2 - 2ab + |b|^2 form loses less precision
    sq = (x * x).sum(dim=-1)  # [N]
    rows = max(1, chunk_elems // n)
    out = torch.empty(n, dtype=means.dtype, device=means.device)  # [N]
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        d2 = torch.addmm(sq[None, :], x[start:stop], x.T, alpha=-2.0) + sq[start:stop, None]  # [C, N]
        local = torch.arange(stop - start, device=means.device)  # [C]
        d2[local, local + start] = float("inf")  # a point is not its own neighbour
        nearest = d2.topk(k, dim=1, largest=False).values.clamp_min(0.0)  # [C, k]
        out[start:stop] = nearest.mean(dim=1)
    return out


def create_splats(
    means: torch.Tensor,
    rgb: torch.Tensor | None = None,
    opacity: float | torch.Tensor = 0.1,
    scales: float | torch.Tensor | None = None,
    sh_degree: int = 0,
    device: torch.device | str | None = None,
) -> torch.nn.ParameterDict:
    """Gaussians at `means` with identity rotations, as raw parameters in a ParameterDict.

    Args:
        means: `[N, 3]` positions (world units).
        rgb: `[N, 3]` colours in [0, 1]; None gives grey (0.5, i.e. sh0 = 0). Higher SH start at zero.
        opacity: opacity in (0, 1), a float or `[N]`; stored as a logit.
        scales: standard deviations in world units (not log): a float, `[N]` (isotropic) or `[N, 3]`.
            None = isotropic, sqrt of the mean squared distance to the 3 nearest neighbours (INRIA's init),
            at least 1e-7 squared so duplicate points do not get a zero scale.
        sh_degree: SH degree 0-3; sets the size of `shN`.
        device: where the parameters live; default: the device of `means`.

    Returns a ParameterDict with `means [N,3]`, `scales [N,3]` (log), `quats [N,4]` (wxyz), `opacities [N]`
    (logit), `sh0 [N,1,3]`, `shN [N,K-1,3]`, all float32.
    """
    device = torch.device(device) if device is not None else means.device
    means = means.detach().to(device=device, dtype=torch.float32)  # [N, 3]
    if means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"means must be [N, 3], got {tuple(means.shape)}")
    if not 0 <= sh_degree <= 3:
        raise ValueError(f"sh_degree must be 0-3, got {sh_degree}")
    n = means.shape[0]
    opacities = torch.as_tensor(opacity, dtype=torch.float32, device=device).expand(n)  # [N]
    if n and not bool(((opacities > 0) & (opacities < 1)).all()):
        raise ValueError("opacity must be strictly between 0 and 1 (it is stored as a logit)")

    if scales is None:
        dist2 = knn_mean_sq_dist(means).clamp_min(1e-7)  # [N]
        scales_t = dist2.sqrt()[:, None].expand(n, 3)  # [N, 3]
    else:
        scales_t = torch.as_tensor(scales, dtype=torch.float32, device=device)
        scales_t = scales_t[:, None] if scales_t.ndim == 1 else scales_t
        scales_t = scales_t.expand(n, 3)  # [N, 3]
    if rgb is None:
        sh0 = torch.zeros(n, 1, 3, device=device)  # [N, 1, 3]  grey
    else:
        sh0 = rgb_to_sh0(torch.as_tensor(rgb, dtype=torch.float32, device=device)).reshape(n, 1, 3)
    quats = torch.zeros(n, 4, device=device)  # [N, 4]
    quats[:, 0] = 1.0  # wxyz identity

    params = {
        "means": means.clone(),
        "scales": scales_t.log(),
        "quats": quats,
        "opacities": torch.logit(opacities),
        "sh0": sh0,
        "shN": torch.zeros(n, num_sh_bases(sh_degree) - 1, 3, device=device),
    }
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v.contiguous()) for k, v in params.items()})


def activated(splats: torch.nn.ParameterDict | dict) -> dict:
    """Activated values for rendering: `means [N,3]`, `quats [N,4]` (unit, wxyz), `scales [N,3]` (exp),
    `opacities [N]` (sigmoid), `sh [N,K,3]` (sh0 and shN stacked), `sh_degree` (int). Differentiable."""
    return {
        "means": splats["means"],
        "quats": torch.nn.functional.normalize(splats["quats"], dim=-1),
        "scales": torch.exp(splats["scales"]),
        "opacities": torch.sigmoid(splats["opacities"]),
        "sh": torch.cat([splats["sh0"], splats["shN"]], dim=1),
        "sh_degree": sh_degree_of(splats),
    }
