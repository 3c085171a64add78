"""A coloured triangle mesh from 3D Gaussians: density on a voxel grid, marching cubes, cleaning, decimation.

Steps (`extract_mesh`):
1. Opacity-weighted Gaussian density on a grid, `D(x) = sum_i o_i exp(-1/2 (x - mu_i)^T Sigma_i^-1 (x - mu_i))`,
   and beside it the density-weighted base colour, `C(x) = sum_i o_i G_i(x) rgb_i`. Each Gaussian's standard
   deviations are widened to at least one voxel first, so that thin discs (3DGS surfaces are made of them) are
   not missed between grid points; a disc's peak stays its opacity.
2. Fill the inside: grid cells below the level that the outside cannot reach through other cells below the level
   are inside the object (a shell of Gaussians encloses them). Without this, a shell would give two surfaces.
3. Marching cubes at `level` (skimage), in the scene's own units and frame.
4. Drop small islands (components with fewer than `min_island` of the faces: floaters), decimate to `faces`
   with quadric error (fast-simplification, through trimesh).
5. Move each vertex inward along its normal onto the ridge of the density (`snap_to_ridge`): the level set of a
   blurred shell lies outside it, the ridge is where the Gaussians are.
6. Vertex colours: C / D interpolated at each final vertex (the Gaussians' base colours, SH degree 0).

Writers (`write_mesh`): `.glb` in glTF's y-up frame with linear COLOR_0 (glTF defines vertex colours as linear;
the Gaussians' colours are display/sRGB values), `.obj` and mesh `.ply` in the input's frame with sRGB colours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lucidkit.export import atomic_path
from lucidkit.exporters.splat_formats import rotation_between
from lucidkit.splat.scene import sh0_to_rgb

CUTOFF_SIGMAS = 3.0  # a Gaussian's density is evaluated within this many standard deviations
MAX_WINDOW = 12  # ... and at most this many voxels from its centre (huge floaters are truncated)


@dataclass
class Mesh:
    """A triangle mesh in the input scene's frame and units."""

    vertices: np.ndarray  # [V, 3] float64
    faces: np.ndarray  # [F, 3] int64, counter-clockwise seen from outside
    colors: np.ndarray  # [V, 3] float32 in [0, 1], sRGB (display values, as the Gaussians' base colours)


@dataclass
class DensityGrid:
    """`density [X, Y, Z]` and `color_sum [X, Y, Z, 3]` at grid points `origin + voxel * (i, j, k)`."""

    density: np.ndarray
    color_sum: np.ndarray
    origin: np.ndarray  # [3] float64
    voxel: float


def _activated(splats: dict, opacity_min: float) -> dict[str, torch.Tensor]:
    """Float64 activated parameters of the Gaussians with opacity >= opacity_min."""
    opacities = torch.sigmoid(splats["opacities"].detach().double())  # [N]
    keep = opacities >= opacity_min
    return {
        "means": splats["means"].detach().double()[keep],  # [n, 3]
        "scales": torch.exp(splats["scales"].detach().double()[keep]),  # [n, 3] standard deviations
        "quats": torch.nn.functional.normalize(splats["quats"].detach().double()[keep], dim=-1),  # [n, 4] wxyz
        "opacities": opacities[keep],  # [n]
        "rgb": sh0_to_rgb(splats["sh0"].detach().double()[keep][:, 0, :]).clamp(0, 1),  # [n, 3]
    }


def rotation_matrices(quats: torch.Tensor) -> torch.Tensor:
    """[n, 3, 3] rotation matrices of unit wxyz quaternions [n, 4]."""
    w, x, y, z = quats.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)  # fmt: skip


def density_grid(splats: dict, resolution: int = 192, opacity_min: float = 0.05,
                 bounds_percentile: float = 0.5) -> DensityGrid:
    """Splat the Gaussians `splats` (raw parameters) onto a grid with `resolution` points along its longest side.

    The grid covers the robust bounds of the Gaussians' centres (`bounds_percentile` cut from each end, so a few
    far floaters do not shrink the object to a handful of voxels), padded by a tenth of the extent."""
    g = _activated(splats, opacity_min)
    means = g["means"]
    if means.shape[0] == 0:
        raise ValueError("no Gaussian is opaque enough to form a surface")
    q = bounds_percentile / 100
    lo = torch.quantile(means, q, dim=0) if means.shape[0] > 1 else means[0]
    hi = torch.quantile(means, 1 - q, dim=0) if means.shape[0] > 1 else means[0]
    extent = (hi - lo).max().clamp_min(1e-6)
    lo, hi = lo - 0.1 * extent - 3 * g["scales"].median(), hi + 0.1 * extent + 3 * g["scales"].median()
    voxel = float((hi - lo).max()) / (resolution - 1)
    dims = [int(math.ceil(float(v) / voxel)) + 1 for v in (hi - lo)]

    inside = ((means >= lo) & (means <= hi)).all(dim=1)  # far floaters beyond the robust bounds are left out
    g = {k: v[inside] for k, v in g.items()}
    means = g["means"]
    sigmas = g["scales"].clamp_min(voxel)  # [n, 3] at least one voxel: no disc slips between grid points
    rot = rotation_matrices(g["quats"])  # [n, 3, 3]
    inv_cov = rot @ torch.diag_embed(sigmas**-2) @ rot.transpose(1, 2)  # [n, 3, 3] A = Sigma^-1
    window = (CUTOFF_SIGMAS * sigmas.max(dim=1).values / voxel).ceil().clamp(1, MAX_WINDOW).long()  # [n] voxels
    centre = ((means - lo) / voxel).round().long()  # [n, 3] nearest grid point
    delta = lo + centre.double() * voxel - means  # [n, 3] that grid point minus the Gaussian's centre
    # The squared Mahalanobis distance at grid point centre + o (o an integer offset) is, with d = delta + v o,
    #   m = delta^T A delta + 2 v o^T (A delta) + v^2 o^T A o:  two small matrix products per window size.
    m0 = torch.einsum("ni,nij,nj->n", delta, inv_cov, delta).float()  # [n]
    a_delta = torch.einsum("nij,nj->ni", inv_cov, delta).float()  # [n, 3]
    a6 = torch.stack([inv_cov[:, 0, 0], inv_cov[:, 1, 1], inv_cov[:, 2, 2],
                      2 * inv_cov[:, 0, 1], 2 * inv_cov[:, 0, 2], 2 * inv_cov[:, 1, 2]], dim=1).float()  # [n, 6]

    # Splat into a grid padded by the largest window on every side, so no window needs a bounds check; crop after.
    pad = int(window.max())
    padded = [d + 2 * pad for d in dims]
    strides = torch.tensor([padded[1] * padded[2], padded[2], 1])
    centre_flat = ((centre + pad) * strides).sum(-1)  # [n]
    density = torch.zeros(padded[0] * padded[1] * padded[2], dtype=torch.float32)
    color_sum = torch.zeros(density.shape[0], 3, dtype=torch.float32)
    rgb, opacities = g["rgb"].float(), g["opacities"].float()
    for r in window.unique().tolist():  # one window size at a time: all offsets are one tensor
        ids = (window == r).nonzero()[:, 0]
        axis = torch.arange(-r, r + 1)
        offsets = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)  # [K, 3]
        offset_flat = (offsets * strides).sum(-1)  # [K]
        o = offsets.float()
        o6 = torch.stack([o[:, 0] ** 2, o[:, 1] ** 2, o[:, 2] ** 2,
                          o[:, 0] * o[:, 1], o[:, 0] * o[:, 2], o[:, 1] * o[:, 2]], dim=1)  # [K, 6]
        chunk = max(1, 4_000_000 // offsets.shape[0])
        for part in ids.split(chunk):
            m = m0[part, None] + (2 * voxel) * (a_delta[part] @ o.T) + voxel**2 * (a6[part] @ o6.T)  # [c, K]
            rows, cols = (m < CUTOFF_SIGMAS**2).nonzero(as_tuple=True)  # [k] kept (Gaussian in part, offset)
            w = opacities[part][rows] * torch.exp(-0.5 * m[rows, cols])  # [k]
            flat = centre_flat[part][rows] + offset_flat[cols]  # [k] flat index in the padded grid
            density.index_add_(0, flat, w)
            color_sum.index_add_(0, flat, w[:, None] * rgb[part][rows])
    crop = (slice(pad, pad + dims[0]), slice(pad, pad + dims[1]), slice(pad, pad + dims[2]))
    density = density.reshape(padded)[crop].double()
    color_sum = color_sum.reshape(*padded, 3)[crop].double()
    return DensityGrid(density.numpy(), color_sum.numpy(), lo.numpy(), voxel)


def fill_inside(density: np.ndarray, level: float) -> np.ndarray:
    """A copy of `density` where every cell below `level` that the grid's border cannot reach through cells below
    `level` (the inside of a closed shell) is raised to the maximum."""
    from scipy import ndimage

    empty = density < level
    labels, _ = ndimage.label(empty)  # 6-connected components of the empty cells
    border = np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(), labels[:, :, [0, -1]].ravel()])
    outside = np.isin(labels, np.unique(border[border > 0]))
    filled = density.copy()
    filled[empty & ~outside] = max(float(density.max()), 2 * level)
    return filled


def sample_colors(grid: DensityGrid, points: np.ndarray) -> np.ndarray:
    """[P, 3] sRGB colours at `points` [P, 3]: the density-weighted mean base colour of the Gaussians there."""
    from scipy import ndimage

    coords = ((points - grid.origin) / grid.voxel).T  # [3, P] in grid index units
    weight = ndimage.map_coordinates(grid.density, coords, order=1, mode="nearest")  # [P]
    colors = np.stack([ndimage.map_coordinates(grid.color_sum[..., c], coords, order=1, mode="nearest")
                       for c in range(3)], axis=1)  # [P, 3]
    return (colors / np.maximum(weight, 1e-12)[:, None]).clip(0, 1).astype(np.float32)


def snap_to_ridge(grid: DensityGrid, vertices: np.ndarray, normals: np.ndarray, reach: float = 4.0) -> np.ndarray:
    """Move each vertex inward along its normal to the first maximum of the density within `reach` voxels.

    The level set of a blurred shell of Gaussians lies outside the shell (at level 0.5, ~1.5-2 standard deviations
    of the shell's thickness); the shell's ridge is where the Gaussians' centres are. Where the density only grows
    inward (a solid volume of Gaussians) there is no ridge within reach and the vertex stays."""
    from scipy import ndimage

    steps = np.arange(0.0, reach + 1e-9, 0.25) * grid.voxel  # [T]
    probes = vertices[:, None, :] - steps[None, :, None] * normals[:, None, :]  # [V, T, 3]
    coords = ((probes.reshape(-1, 3) - grid.origin) / grid.voxel).T  # [3, V*T]
    d = ndimage.map_coordinates(grid.density, coords, order=1, mode="nearest").reshape(len(vertices), -1)
    falling = np.diff(d, axis=1) < 0  # [V, T-1] the density drops after step t
    has_ridge = falling.any(axis=1)
    first = np.where(has_ridge, falling.argmax(axis=1), 0)  # the first local maximum, else stay
    return vertices - steps[first][:, None] * normals


def extract_mesh(splats: dict, faces: int = 50_000, resolution: int = 192, level: float = 0.5,
                 min_island: float = 0.02, opacity_min: float = 0.05, snap: bool = True) -> Mesh:
    """The surface of the Gaussians `splats` (raw parameters) as a coloured mesh of at most `faces` triangles,
    in the scene's frame and units (see the module doc for the steps)."""
    import trimesh
    from skimage import measure

    grid = density_grid(splats, resolution, opacity_min)
    filled = fill_inside(grid.density, level)
    if not (filled.max() > level > filled.min()):
        raise ValueError(f"the Gaussians' density never crosses the level {level}: no surface to extract")
    verts, tris, _, _ = measure.marching_cubes(filled, level=level, spacing=(grid.voxel,) * 3)
    verts = verts + grid.origin  # [V, 3] scene units
    # skimage orders triangles so their normals point toward increasing values (inward here): flip to outward.
    mesh = trimesh.Trimesh(verts, tris[:, ::-1], process=True)

    parts = mesh.split(only_watertight=False)
    if len(parts) > 1:
        keep = [p for p in parts if len(p.faces) >= min_island * len(mesh.faces)]
        mesh = trimesh.util.concatenate(keep or [max(parts, key=lambda p: len(p.faces))])
    if len(mesh.faces) > faces:
        # aggression 3 of 10 (default 7): slower, but keeps sharp-edged shapes watertight (measured on toy cubes)
        mesh = mesh.simplify_quadric_decimation(face_count=faces, aggression=3)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if snap:
        vertices = snap_to_ridge(grid, vertices, np.asarray(mesh.vertex_normals, dtype=np.float64))
    return Mesh(vertices, np.asarray(mesh.faces, dtype=np.int64), sample_colors(grid, vertices))


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """The sRGB transfer function's inverse (values in [0, 1])."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def write_mesh(mesh: Mesh, path: str | Path, name: str, up: str = "z") -> Path:
    """Write `mesh` as 'glb' (y-up, linear vertex colours), 'obj' or 'mesh-ply' (the input's frame, sRGB vertex
    colours), atomically. `up` is the input's up axis."""
    import trimesh

    vertices, colors = mesh.vertices, mesh.colors
    if name == "glb":
        vertices = vertices @ rotation_between(up, "y").numpy().T
        colors = srgb_to_linear(colors)
    rgba = np.concatenate([np.round(colors * 255), np.full((len(colors), 1), 255)], axis=1).astype(np.uint8)
    out = trimesh.Trimesh(vertices, mesh.faces, vertex_colors=rgba, process=False)
    file_type = {"glb": "glb", "obj": "obj", "mesh-ply": "ply"}[name]
    with atomic_path(path) as tmp:
        if file_type == "obj":  # vertex colours as `v x y z r g b`; no material file, no normals to go stale
            tmp.write_text(trimesh.exchange.obj.export_obj(out, include_normals=False, include_color=True,
                                                           include_texture=False))
        else:
            out.export(tmp, file_type=file_type)
    return Path(path)
