"""Initial Gaussians: a ball of points, a box of points, or a point cloud file.

Every initialiser returns the raw-parameter ParameterDict of `scene.create_splats`: identity rotations,
isotropic scales from the mean squared distance to the 3 nearest neighbours, the given opacity (recipe: 0.1)
and colour (grey unless the file has colours). Randomness comes only from the `generator` passed in, so a
seeded generator gives the same Gaussians every time.

"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lucidkit.errors import UserError
from lucidkit.splat.ply import PlyError, read_vertices
from lucidkit.splat.scene import create_splats, sh0_to_rgb

SHAPES = ("sphere", "box", "points")


@dataclass
class InitConfig:
    """Where the optimisation starts."""

    shape: str = "sphere"
    """Initial Gaussians: "sphere" (a ball of points), "box" (a cube of points) or "points" (a .ply file)."""
    n_points: int = 100_000
    """Number of Gaussians for sphere/box; for points, the most to keep (a random subset), 0 = all."""
    radius: float = 0.5
    """Ball radius for sphere, half the side for box (world units)."""
    path: str | None = None
    """Point cloud .ply for shape "points": x, y, z and optional red/green/blue or f_dc_0..2 colours."""
    opacity: float = 0.1
    """Initial opacity of every Gaussian, in (0, 1)."""
    sh_degree: int = 0
    """Spherical-harmonics degree of the colours (0-3); the recipe uses 0."""


def init_sphere(
    n: int,
    radius: float = 0.5,
    generator: torch.Generator | None = None,
    opacity: float = 0.1,
    sh_degree: int = 0,
    device: torch.device | str | None = None,
) -> torch.nn.ParameterDict:
    """`n` grey Gaussians in a ball around the origin, as LucidDreamer's release places them: a uniform
    direction and a distance uniform in [0, radius) — uniform in radius, not in volume, so the centre is denser."""
    direction = torch.randn(n, 3, generator=generator)  # [N, 3]
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    distance = radius * torch.rand(n, 1, generator=generator)  # [N, 1]
    return create_splats(direction * distance, opacity=opacity, sh_degree=sh_degree, device=device)


def init_box(
    n: int,
    half_extent: float = 0.5,
    generator: torch.Generator | None = None,
    opacity: float = 0.1,
    sh_degree: int = 0,
    device: torch.device | str | None = None,
) -> torch.nn.ParameterDict:
    """`n` grey Gaussians uniform in the cube [-half_extent, half_extent]^3."""
    means = (2.0 * torch.rand(n, 3, generator=generator) - 1.0) * half_extent  # [N, 3]
    return create_splats(means, opacity=opacity, sh_degree=sh_degree, device=device)


def read_point_cloud(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Positions `[N, 3]` and colours `[N, 3]` in [0, 1] (or None) from any `.ply` with x, y, z.

    Colours come from red/green/blue (uchar /255, ushort /65535, float as is) or else from f_dc_0..2 (a
    3DGS file's base colour). Raises PlyError for a file without x, y, z, without points, or with NaN/inf.
    """
    path = Path(path)
    vertices = read_vertices(path)
    missing = [c for c in ("x", "y", "z") if c not in vertices]
    if missing:
        raise PlyError(f"{path}: point cloud needs vertex properties x, y, z; missing {', '.join(missing)}")
    means = np.stack([vertices[c].astype(np.float32) for c in ("x", "y", "z")], axis=1)  # [N, 3]
    if len(means) == 0:
        raise PlyError(f"{path}: point cloud has no points")
    bad = int((~np.isfinite(means).all(axis=1)).sum())
    if bad:
        raise PlyError(f"{path}: {bad} of {len(means)} points have NaN or infinite positions")

    rgb = None
    if all(c in vertices for c in ("red", "green", "blue")):
        columns = [vertices[c] for c in ("red", "green", "blue")]
        kind = columns[0].dtype
        scale = float(np.iinfo(kind).max) if kind.kind in "ui" else 1.0  # integers are 0..max, floats 0..1
        rgb = np.stack([c.astype(np.float32) for c in columns], axis=1) / scale  # [N, 3]
    elif all(f"f_dc_{i}" in vertices for i in range(3)):
        sh0 = np.stack([vertices[f"f_dc_{i}"].astype(np.float32) for i in range(3)], axis=1)  # [N, 3]
        rgb = sh0_to_rgb(sh0)
    if rgb is not None:
        rgb = torch.from_numpy(np.clip(np.nan_to_num(rgb, nan=0.5), 0.0, 1.0))
    return torch.from_numpy(means), rgb


def init_from_ply(
    path: str | os.PathLike,
    max_points: int = 0,
    generator: torch.Generator | None = None,
    opacity: float = 0.1,
    sh_degree: int = 0,
    device: torch.device | str | None = None,
) -> torch.nn.ParameterDict:
    """Gaussians at the points of a `.ply` point cloud (see `read_point_cloud`), coloured from the file or grey.

    With `max_points > 0` and more points than that, a random subset (drawn with `generator`, file order kept).
    """
    means, rgb = read_point_cloud(path)
    if 0 < max_points < len(means):
        keep = torch.randperm(len(means), generator=generator)[:max_points].sort().values  # [max_points]
        means = means[keep]
        rgb = rgb[keep] if rgb is not None else None
    return create_splats(means, rgb, opacity=opacity, sh_degree=sh_degree, device=device)


def init_gaussians(
    cfg: InitConfig, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> torch.nn.ParameterDict:
    """The initial Gaussians an `InitConfig` describes. Bad settings raise UserError naming the field."""
    if cfg.shape not in SHAPES:
        raise UserError(f"init.shape must be one of {', '.join(SHAPES)}; got {cfg.shape!r}")
    if cfg.shape != "points" and cfg.n_points <= 0:
        raise UserError(f"init.n_points must be a positive number of Gaussians; got {cfg.n_points}")
    if not cfg.radius > 0:
        raise UserError(f"init.radius must be positive; got {cfg.radius}")
    if not 0 < cfg.opacity < 1:
        raise UserError(f"init.opacity must be between 0 and 1 (exclusive); got {cfg.opacity}")
    if cfg.sh_degree not in (0, 1, 2, 3):
        raise UserError(f"init.sh_degree must be 0, 1, 2 or 3; got {cfg.sh_degree}")
    common = dict(generator=generator, opacity=cfg.opacity, sh_degree=cfg.sh_degree, device=device)
    if cfg.shape == "sphere":
        return init_sphere(cfg.n_points, cfg.radius, **common)
    if cfg.shape == "box":
        return init_box(cfg.n_points, cfg.radius, **common)
    if not cfg.path:
        raise UserError('init.path must name a .ply point cloud when init.shape is "points"')
    return init_from_ply(cfg.path, max(cfg.n_points, 0), **common)
