"""The sample scene shipped as `samples/scene.ply`: a small house of Gaussians (walls, roof, a door on the front,
windows on the sides) for trying `lucidkit edit` and the export tools on a file that is not a generated object.

`python -m lucidkit.toyworld.sample_scene samples/scene.ply` regenerates it.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from lucidkit.splat.ply import write_ply
from lucidkit.splat.scene import create_splats

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
