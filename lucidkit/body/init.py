"""Points on the posed body surface, and initial Gaussians there (the layout of `lucidkit.splat.init`).

`sample_surface` draws points uniformly by area over the mesh's triangles (with their face normals);
`init_body` turns them into the engine's raw-parameter ParameterDict like `lucidkit.splat.init`'s initialisers:
identity rotations, isotropic scales from the mean squared distance to the 3 nearest neighbours, a neutral
colour and a low opacity (the recipe's 0.1).
"""

from __future__ import annotations

import torch

from lucidkit.body.pose import PosedBody
from lucidkit.splat.scene import create_splats


def sample_surface(
    vertices: torch.Tensor,  # [V, 3]
    faces: torch.Tensor,  # [F, 3] long
    n: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` points uniform by area on the triangle mesh, `[n, 3]`, and the unit normals of their faces `[n, 3]`
    (right-hand rule on the face's vertex order; the built-in body winds its faces outward)."""
    tri = vertices[faces]  # [F, 3, 3]
    cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # [F, 3]
    area = 0.5 * cross.norm(dim=1)  # [F]
    face = torch.multinomial(area / area.sum(), n, replacement=True, generator=generator)  # [n]
    uv = torch.rand(n, 2, generator=generator, dtype=vertices.dtype)  # [n, 2]
    outside = uv.sum(1, keepdim=True) > 1  # fold the unit square onto the triangle
    uv = torch.where(outside, 1 - uv.flip(1), uv)
    a, b, c = tri[face].unbind(1)  # [n, 3] each
    points = a + uv[:, :1] * (b - a) + uv[:, 1:] * (c - a)  # [n, 3]
    normals = torch.nn.functional.normalize(cross[face], dim=1)  # [n, 3]
    return points, normals


def init_body(
    body: PosedBody,
    n: int,
    generator: torch.Generator | None = None,
    opacity: float = 0.1,
    sh_degree: int = 0,
    grey: float = 0.5,
    world: bool = True,
    device: torch.device | str | None = None,
) -> torch.nn.ParameterDict:
    """`n` grey Gaussians on the posed body's surface: in lucidkit's z-up world (`world=True`, the frame the
    optimisation runs in) or in the body's y-up frame. Scales come from nearest-neighbour distances."""
    points, _ = sample_surface(body.vertices, body.faces, n, generator)
    if world:
        from lucidkit.body.pose import to_world

        points = to_world(points)
    rgb = torch.full((n, 3), float(grey))
    return create_splats(points, rgb, opacity=opacity, sh_degree=sh_degree, device=device)
