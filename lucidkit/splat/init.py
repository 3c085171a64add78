"""Initial Gaussians: a ball of points, a box of points, or a point cloud file; and the shipped sample scene.

Every initialiser returns the raw-parameter ParameterDict of `scene.create_splats`: identity rotations,
isotropic scales from the mean squared distance to the 3 nearest neighbours, the given opacity (recipe: 0.1)
and colour (grey unless the file has colours). Randomness comes only from the `generator` passed in, so a
seeded generator gives the same Gaussians every time.

`python -m lucidkit.splat.init samples/scene.ply` regenerates the sample scene that ships in `samples/`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from lucidkit.errors import UserError
from lucidkit.splat.ply import PlyError, read_vertices, write_ply
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


# ----------------------------------------------------------------------------------------------------------------
# The sample scene shipped as samples/scene.ply
# ----------------------------------------------------------------------------------------------------------------

_WALL = (0.85, 0.75, 0.55)  # beige
_ROOF = (0.75, 0.15, 0.10)  # red
_DOOR = (0.35, 0.20, 0.10)  # dark brown, on the front (+x) wall
_WINDOW = (0.30, 0.50, 0.90)  # blue, on the side (+-y) walls
_FLOOR = (0.40, 0.40, 0.40)  # grey


def _f64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _sample_rect(n: int, origin, u, v, g: torch.Generator) -> torch.Tensor:
    """`n` uniform points on the parallelogram origin + a*u + b*v, a, b in [0, 1]: `[n, 3]`."""
    ab = torch.rand(n, 2, generator=g, dtype=torch.float64)  # [n, 2]
    return _f64(origin) + ab[:, :1] * _f64(u) + ab[:, 1:] * _f64(v)


def _sample_triangle(n: int, a, b, c, g: torch.Generator) -> torch.Tensor:
    """`n` uniform points on the triangle abc: `[n, 3]` (folding the unit square onto the triangle)."""
    uv = torch.rand(n, 2, generator=g, dtype=torch.float64)  # [n, 2]
    outside = uv.sum(dim=1, keepdim=True) > 1  # [n, 1]
    uv = torch.where(outside, 1 - uv.flip(1), uv)
    a, b, c = _f64(a), _f64(b), _f64(c)
    return a + uv[:, :1] * (b - a) + uv[:, 1:] * (c - a)


def make_sample_scene(n: int = 3000, seed: int = 0) -> torch.nn.ParameterDict:
    """A small house made of `n` opaque Gaussians on its surfaces, centred at the origin, facing +x.

    Beige walls (x, y in [-0.3, 0.3], z in [-0.35, 0.1]) with a brown door on the front (+x) wall and blue
    windows on both side walls, a red pyramid roof up to z = 0.4, a grey floor. Points are spread over the
    surfaces in proportion to area; every Gaussian is isotropic with scale 0.015 and opacity 0.9, SH degree 0.
    Deterministic for a given `n` and `seed` (float64 sampling, no nearest-neighbour search).
    """
    g = torch.Generator().manual_seed(seed)
    w, z0, z1, roof_w, apex = 0.3, -0.35, 0.1, 0.35, 0.4
    height = z1 - z0
    walls = [  # (origin, u, v) of the four walls and the floor
        ((w, -w, z0), (0, 2 * w, 0), (0, 0, height)),  # front, +x
        ((-w, -w, z0), (0, 2 * w, 0), (0, 0, height)),  # back, -x
        ((-w, w, z0), (2 * w, 0, 0), (0, 0, height)),  # left, +y
        ((-w, -w, z0), (2 * w, 0, 0), (0, 0, height)),  # right, -y
        ((-w, -w, z0), (2 * w, 0, 0), (0, 2 * w, 0)),  # floor
    ]
    corners = [(roof_w, -roof_w, z1), (roof_w, roof_w, z1), (-roof_w, roof_w, z1), (-roof_w, -roof_w, z1)]
    roofs = [(corners[i], corners[(i + 1) % 4], (0.0, 0.0, apex)) for i in range(4)]

    wall_area = [float(np.linalg.norm(np.cross(u, v))) for _, u, v in walls]
    roof_area = [0.5 * float(np.linalg.norm(np.cross(np.subtract(b, a), np.subtract(c, a)))) for a, b, c in roofs]
    areas = np.array(wall_area + roof_area)
    counts = np.floor(n * areas / areas.sum()).astype(int)
    counts[0] += n - counts.sum()  # the rounding remainder goes to the front wall

    parts, colours = [], []
    for i, ((origin, u, v), count) in enumerate(zip(walls, counts[: len(walls)])):
        points = _sample_rect(int(count), origin, u, v, g)  # [count, 3]
        rgb = _f64(_FLOOR if i == 4 else _WALL).repeat(int(count), 1)  # [count, 3]
        x, y, z = points.unbind(dim=1)
        if i == 0:  # front wall: a door in the middle, from the floor up
            rgb[(y.abs() < 0.08) & (z < -0.1)] = _f64(_DOOR)
        if i in (2, 3):  # side walls: one window each
            rgb[(x.abs() < 0.1) & (z > -0.15) & (z < 0.0)] = _f64(_WINDOW)
        parts.append(points)
        colours.append(rgb)
    for (a, b, c), count in zip(roofs, counts[len(walls) :]):
        parts.append(_sample_triangle(int(count), a, b, c, g))
        colours.append(_f64(_ROOF).repeat(int(count), 1))
    means = torch.cat(parts)  # [n, 3]
    rgb = torch.cat(colours)  # [n, 3]
    return create_splats(means.float(), rgb.float(), opacity=0.9, scales=0.015)


def sample_scene_path() -> Path:
    """Path of the sample scene shipped with lucidkit (`samples/scene.ply`, written by `write_sample_scene`)."""
    return Path(str(resources.files("lucidkit.samples") / "scene.ply"))


def write_sample_scene(path: str | os.PathLike | None = None) -> Path:
    """Write `make_sample_scene()` to `path` (default: the shipped `samples/scene.ply`) and return the path."""
    return write_ply(path if path is not None else sample_scene_path(), make_sample_scene())


if __name__ == "__main__":
    print(write_sample_scene(sys.argv[1] if len(sys.argv) > 1 else None))
