"""Measure `lucidkit export`: mesh accuracy on toy-world shapes (three surface methods) and the sizes and times of
every format for a 100k-Gaussian scene. CPU; a few minutes. Prints the tables of docs/export.md.

    OMP_NUM_THREADS=1 python tools/export_measure.py            # both parts
    python tools/export_measure.py --part mesh --resolution 128

Mesh methods compared (same grid, islands, decimation and vertex colours):
- `level-set`: marching cubes on the opacity-weighted density at 0.5 (inside filled), no snapping;
- `level-set+ridge` (what `lucidkit export` ships): the same, each vertex moved inward onto the density's ridge;
- `depth-fusion`: expected depth maps rendered from 42 views around the object (lucidkit's renderer), fused into
  a truncated signed distance on the same grid (free space carved where a pixel's alpha < 0.5), marching cubes at 0.

Ground truth: the toy world's shapes are known exactly (lucidkit/toyworld/objects.py); the distance of a mesh point
to the true surface is analytic (a box, or the profile curve of a surface of revolution), and the true surface's
samples are the Gaussians' centres. Chamfer = mean of (mesh -> truth) and (truth -> mesh), in units of the
object's size (its bounding box's longest side). Colour error: mean |vertex rgb - rgb of the nearest Gaussian|.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lucidkit.exporters import export_scene
from lucidkit.exporters.mesh import Mesh, density_grid, extract_mesh, sample_colors
from lucidkit.splat.ply import write_ply
from lucidkit.toyworld.objects import FIT_RADIUS, ToyObject, build

# Unit-size profiles (radius, z) of the toy shapes of revolution (objects.py), as polylines / circles.
PROFILES = {
    "cylinder": [(0.0, 0.42), (0.42, 0.42), (0.42, -0.42), (0.0, -0.42)],
    "cone": [(0.0, -0.45), (0.45, -0.45), (0.0, 0.45)],
}


def _unit_fit(shape: str) -> tuple[np.ndarray, float]:
    """The centre and scale `build` applied to the shape's unit geometry (world = fit * (unit - centre))."""
    from lucidkit.toyworld import objects

    points, _ = objects._GEOMETRY[shape]()
    centre = 0.5 * (points.amin(0) + points.amax(0))
    return centre.numpy(), float(FIT_RADIUS / (points - centre).norm(dim=-1).max())


def _segment_distance(p: np.ndarray, a, b) -> np.ndarray:
    """Distance of 2D points p [P, 2] to the segment a-b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    t = np.clip(((p - a) @ (b - a)) / max(float((b - a) @ (b - a)), 1e-12), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * (b - a)), axis=1)


def true_distance(shape: str, points: np.ndarray) -> np.ndarray:
    """Unsigned distance of world points [P, 3] to the true surface of a toy `shape`."""
    centre, fit = _unit_fit(shape)
    u = points / fit + centre  # unit coordinates
    if shape == "cube":
        q = np.abs(u) - 0.4
        d = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)
    elif shape == "sphere":
        d = np.linalg.norm(u, axis=1) - 0.5
    elif shape == "torus":
        rz = np.stack([np.linalg.norm(u[:, :2], axis=1) - 0.40, u[:, 2]], axis=1)
        d = np.linalg.norm(rz, axis=1) - 0.18
    else:
        rz = np.stack([np.linalg.norm(u[:, :2], axis=1), u[:, 2]], axis=1)
        poly = PROFILES[shape]
        d = np.min([_segment_distance(rz, poly[i], poly[i + 1]) for i in range(len(poly) - 1)], axis=0)
    return np.abs(d) * fit


def depth_fusion_mesh(splats: dict, resolution: int, faces: int, views: int = 42, size: int = 128) -> Mesh:
    """The `depth-fusion` method (see the module doc)."""
    import trimesh
    from skimage import measure

    from lucidkit.cameras import intrinsics, look_at
    from lucidkit.splat.render import render

    grid = density_grid(splats, resolution)
    dims = grid.density.shape
    axes = [grid.origin[i] + grid.voxel * np.arange(dims[i]) for i in range(3)]
    voxels = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)  # [M, 3]
    trunc = 3 * grid.voxel
    sdf_sum = np.zeros(len(voxels))
    weight = np.zeros(len(voxels))
    behind = np.zeros(len(voxels), dtype=bool)

    i = np.arange(views) + 0.5  # Fibonacci directions around the object
    z = 1 - 2 * i / views
    phi = i * math.pi * (3 - math.sqrt(5))
    dirs = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], axis=1)
    eye = torch.tensor(3.0 * FIT_RADIUS * dirs, dtype=torch.float32)  # [V, 3]
    up = torch.tensor([[0.0, 0.0, 1.0]]).expand(views, 3).clone()
    up[np.abs(dirs[:, 2]) > 0.95] = torch.tensor([1.0, 0.0, 0.0])
    viewmats = look_at(eye, torch.zeros_like(eye), up)
    Ks = intrinsics(torch.full((views,), 2 * math.asin(1 / 3.0) * 1.1), size, size)
    act = {"means": splats["means"], "quats": splats["quats"], "scales": torch.exp(splats["scales"]),
           "opacities": torch.sigmoid(splats["opacities"]), "colors": splats["sh0"]}
    with torch.no_grad():
        for chunk in range(0, views, 6):
            sl = slice(chunk, chunk + 6)
            out = render(act["means"], act["quats"], act["scales"], act["opacities"], act["colors"],
                         viewmats[sl], Ks[sl], size, size, sh_degree=0, backend="torch")
            for v in range(out.depth.shape[0]):
                vm, K = viewmats[sl][v].double().numpy(), Ks[sl][v].double().numpy()
                cam = voxels @ vm[:3, :3].T + vm[:3, 3]  # [M, 3]
                px = np.floor(cam[:, 0] / cam[:, 2] * K[0, 0] + K[0, 2]).astype(int)
                py = np.floor(cam[:, 1] / cam[:, 2] * K[1, 1] + K[1, 2]).astype(int)
                ok = (px >= 0) & (px < size) & (py >= 0) & (py < size) & (cam[:, 2] > 0)
                depth = out.depth[v, ..., 0].double().numpy()[py.clip(0, size - 1), px.clip(0, size - 1)]
                alpha = out.alpha[v, ..., 0].double().numpy()[py.clip(0, size - 1), px.clip(0, size - 1)]
                sdf = np.where(alpha > 0.5, depth - cam[:, 2], trunc)  # free space where nothing is drawn
                use = ok & (sdf > -trunc)
                behind |= ok & (sdf <= -trunc)
                sdf_sum[use] += np.minimum(sdf[use], trunc)
                weight[use] += 1
    # Cells deeper than the band behind a surface in some view and in no band at all are inside the object.
    tsdf = np.where(weight > 0, sdf_sum / np.maximum(weight, 1), np.where(behind, -trunc, trunc)).reshape(dims)
    verts, tris, _, _ = measure.marching_cubes(tsdf, level=0.0, spacing=(grid.voxel,) * 3)
    mesh = trimesh.Trimesh(verts + grid.origin, tris, process=True)
    parts = mesh.split(only_watertight=False)
    mesh = trimesh.util.concatenate([p for p in parts if len(p.faces) >= 0.02 * len(mesh.faces)] or parts[:1])
    if len(mesh.faces) > faces:
        mesh = mesh.simplify_quadric_decimation(face_count=faces, aggression=3)
    v = np.asarray(mesh.vertices)
    return Mesh(v, np.asarray(mesh.faces), sample_colors(grid, v))


def score(mesh: Mesh, shape: str, splats: dict) -> dict:
    import trimesh
    from scipy.spatial import cKDTree

    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    means = splats["means"].double().numpy()
    size = float(np.ptp(means, axis=0).max())
    samples = tm.sample(200_000, seed=0)
    to_truth = true_distance(shape, samples).mean()
    to_mesh = cKDTree(samples).query(means)[0].mean()
    rgb = (0.5 + 0.28209479177387814 * splats["sh0"][:, 0, :].double().numpy()).clip(0, 1)
    nearest = cKDTree(means).query(mesh.vertices)[1]
    return {"chamfer_pct": 100 * 0.5 * (to_truth + to_mesh) / size, "colour_err": float(np.abs(mesh.colors - rgb[nearest]).mean()),
            "faces": len(mesh.faces), "watertight": bool(tm.is_watertight)}


def level_set_mesh(splats, resolution, faces, snap):
    return extract_mesh(splats, faces=faces, resolution=resolution, snap=snap)


def measure_meshes(resolution: int, faces: int) -> None:
    objects = [ToyObject("cube", "red"), ToyObject("sphere", "blue"), ToyObject("cylinder", "green"),
               ToyObject("cone", "orange"), ToyObject("torus", "purple"),
               ToyObject("cube", "red", "striped", "yellow")]
    methods = {
        "level-set": lambda s: level_set_mesh(s, resolution, faces, snap=False),
        "level-set+ridge": lambda s: level_set_mesh(s, resolution, faces, snap=True),
        "depth-fusion": lambda s: depth_fusion_mesh(s, resolution, faces),
    }
    print(f"\nMesh accuracy (grid {resolution}, <= {faces} faces; Chamfer in % of the object's size)")
    print("| object | Gaussians | method | Chamfer % | colour error | faces | watertight | s |")
    print("|---|---|---|---|---|---|---|---|")
    for obj in objects:
        splats = build(obj)
        for name, method in methods.items():
            start = time.perf_counter()
            mesh = method(splats)
            seconds = time.perf_counter() - start
            r = score(mesh, obj.shape, splats)
            print(f"| {obj.prompt} | {len(splats['means'])} | {name} | {r['chamfer_pct']:.2f} | "
                  f"{r['colour_err']:.3f} | {r['faces']} | {r['watertight']} | {seconds:.1f} |", flush=True)


def big_scene(n: int = 100_000, seed: int = 0) -> dict:
    """A 100k-Gaussian, SH degree 3 scene: the toy house's Gaussians, copied with jitter, plus higher SH."""
    g = torch.Generator().manual_seed(seed)
    base = build(ToyObject("house"))
    idx = torch.randint(0, len(base["means"]), (n,), generator=g)
    s = {k: v[idx].clone() for k, v in base.items()}
    s["means"] += 0.004 * torch.randn(n, 3, generator=g)
    s["scales"] -= 0.7  # smaller discs, as in a denser capture
    s["shN"] = 0.05 * torch.randn(n, 15, 3, generator=g)
    return s


def measure_formats(resolution: int, faces: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ply = Path(tmp) / "scene.ply"
        write_ply(ply, big_scene(), with_normals=False)
        print(f"\nFormats for a 100k-Gaussian scene (SH degree 3; input scene.ply {ply.stat().st_size / 1e6:.2f} MB;"
              f" mesh grid {resolution}, {faces} faces; 1 CPU thread)")
        print("| format | size MB | seconds |")
        print("|---|---|---|")
        results = export_scene(ply, ["all"], out=tmp, faces=faces, resolution=resolution)
        for r in results:  # the first mesh format's time includes extracting the surface, shared by the others
            print(f"| {r.format} | {r.bytes / 1e6:.2f} | {r.seconds:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["mesh", "formats", "all"], default="all")
    parser.add_argument("--resolution", type=int, default=192)
    parser.add_argument("--faces", type=int, default=50_000)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.part in ("mesh", "all"):
        measure_meshes(args.resolution, min(args.faces, 20_000))
    if args.part in ("formats", "all"):
        measure_formats(args.resolution, args.faces)


if __name__ == "__main__":
    main()
