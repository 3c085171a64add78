"""`lucidkit export`: the web splat formats read back right, meshes of known shapes sit on the true surface with
the right colours, and bad input fails with one line and writes nothing."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import one_line_error
from lucidkit.commands.cli import cli
from lucidkit.splat.ply import read_ply, write_ply

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
RED_CUBE = SAMPLES / "red-cube.ply"
C0 = 0.28209479177387814
# Our scenes are z-up; the web formats are -y up: (x, y, z) -> (x, -z, y), a +90 degree turn about x.
Z_UP_TO_VIEWER = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])


def export(*args):
    return CliRunner().invoke(cli, ["export", *map(str, args)], catch_exceptions=False)


def covariances(quats_wxyz: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """[N, 3, 3] R diag(s^2) R^T from quaternions (any norm) and standard deviations."""
    q = quats_wxyz / np.linalg.norm(quats_wxyz, axis=1, keepdims=True)
    w, x, y, z = q.T
    r = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                  2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                  2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1).reshape(-1, 3, 3)
    return r @ (scales[:, :, None] ** 2 * np.swapaxes(r, 1, 2))


def expected_in_viewer_frame(ply: Path) -> dict[str, np.ndarray]:
    """The input's Gaussians as the web formats should hold them (activated, in the -y-up frame)."""
    s = {k: v.detach().double().numpy() for k, v in read_ply(ply).splats.items()}
    cov = covariances(s["quats"], np.exp(s["scales"]))
    return {
        "means": s["means"] @ Z_UP_TO_VIEWER.T,
        "cov": Z_UP_TO_VIEWER @ cov @ Z_UP_TO_VIEWER.T,
        "rgb": 0.5 + C0 * s["sh0"][:, 0, :],
        "alpha": 1 / (1 + np.exp(-s["opacities"])),
        "log_scales": s["scales"],
    }


def match(found: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each row of `found` [N, 3], the index of the nearest row of `wanted` (files reorder the Gaussians)."""
    from scipy.spatial import cKDTree

    return cKDTree(wanted).query(found)[1]


def test_splat_reads_back_within_its_quantisation(tmp_path):
    out = tmp_path / "cube.splat"
    result = export(RED_CUBE, "--format", "splat", "--out", out)
    assert result.exit_code == 0, result.output
    want = expected_in_viewer_frame(RED_CUBE)
    raw = out.read_bytes()
    n = len(want["means"])
    assert len(raw) == 32 * n  # 32 bytes per Gaussian, nothing else
    floats = np.frombuffer(raw, "<f4").reshape(n, 8)
    bytes_ = np.frombuffer(raw, np.uint8).reshape(n, 32)
    means, scales = floats[:, :3].astype(np.float64), floats[:, 3:6].astype(np.float64)
    rgba = bytes_[:, 24:28] / 255.0
    quats = (bytes_[:, 28:32].astype(np.float64) - 128) / 128  # wxyz
    idx = match(means, want["means"])
    assert np.abs(means - want["means"][idx]).max() < 1e-6  # float32 positions, turned to -y up
    np.testing.assert_allclose(scales, np.exp(want["log_scales"][idx]), rtol=1e-5)
    assert np.abs(rgba[:, :3] - want["rgb"][idx]).max() <= 1.5 / 255
    assert np.abs(rgba[:, 3] - want["alpha"][idx]).max() <= 1.5 / 255
    # Orientation: the covariance the viewer builds from rotation + scale matches the input's, turned.
    cov = covariances(quats, scales)
    size = np.exp(want["log_scales"][idx]).max(axis=1)[:, None, None] ** 2
    assert (np.abs(cov - want["cov"][idx]) / size).max() < 0.05  # 8-bit quaternion components
    # The red cube is red, and its top (+z in the file) is -y in the web frame.
    assert (rgba[:, 0] > 2 * rgba[:, 1]).all() and (rgba[:, 0] > 2 * rgba[:, 2]).all()


def test_up_names_the_input_up_axis(tmp_path):
    """The red cube written y-up (as OpenGL-style tools do) and exported with --up y gives the same .splat as the
    z-up original."""
    splats = {k: v.detach().clone() for k, v in read_ply(RED_CUBE).splats.items()}
    splats["means"] += torch.tensor([0.0, 0.0, 0.5])  # lifted: a turned cube no longer maps onto itself
    write_ply(tmp_path / "z_up.ply", splats, with_normals=False)
    splats["means"] = splats["means"] @ torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # (x, y, z) -> (x, z, -y)
    q = torch.tensor([math.cos(math.pi / 4), -math.sin(math.pi / 4), 0, 0])  # -90 degrees about x
    w1, x1, y1, z1 = q
    w2, x2, y2, z2 = splats["quats"].unbind(-1)
    splats["quats"] = torch.stack([w1 * w2 - x1 * x2, w1 * x2 + x1 * w2, w1 * y2 - x1 * z2, w1 * z2 + x1 * y2], -1)
    write_ply(tmp_path / "y_up.ply", splats, with_normals=False)
    assert export(tmp_path / "y_up.ply", "--up", "y", "--out", tmp_path / "a.splat").exit_code == 0
    assert export(tmp_path / "z_up.ply", "--out", tmp_path / "b.splat").exit_code == 0
    a = np.frombuffer((tmp_path / "a.splat").read_bytes(), "<f4").reshape(-1, 8)[:, :6]
    b = np.frombuffer((tmp_path / "b.splat").read_bytes(), "<f4").reshape(-1, 8)[:, :6]
    idx = match(a[:, :3], b[:, :3])
    assert np.abs(a - b[idx]).max() < 1e-5  # same positions and scales
    assert b[:, 1].mean() < -0.4  # lifted up = toward -y in the web frame


def read_compressed_ply(path: Path) -> dict[str, np.ndarray]:
    """Decode PlayCanvas's compressed .ply from its published layout (independently of the writer)."""
    from lucidkit.splat.ply import read_ply_header

    header = read_ply_header(path)
    elements = {e.name: e for e in header.elements}
    data = path.read_bytes()[header.data_offset:]
    n_chunks, n = elements["chunk"].count, elements["vertex"].count
    chunks = np.frombuffer(data, "<f4", count=18 * n_chunks).reshape(n_chunks, 18).astype(np.float64)
    packed = np.frombuffer(data, "<u4", count=4 * n, offset=72 * n_chunks).reshape(n, 4).astype(np.int64)
    c = chunks[np.arange(n) // 256]  # [N, 18] each Gaussian's chunk

    def unorm(v, bits):
        return (v & ((1 << bits) - 1)) / ((1 << bits) - 1)

    def unpack_111011(v):
        return np.stack([unorm(v >> 21, 11), unorm(v >> 11, 10), unorm(v, 11)], axis=1)

    def lerp(lo, hi, t):
        return lo + (hi - lo) * t

    pos = lerp(c[:, 0:3], c[:, 3:6], unpack_111011(packed[:, 0]))
    log_scales = lerp(c[:, 6:9], c[:, 9:12], unpack_111011(packed[:, 2]))
    col = np.stack([unorm(packed[:, 3] >> s, 8) for s in (24, 16, 8, 0)], axis=1)
    rgb, alpha = lerp(c[:, 12:15], c[:, 15:18], col[:, :3]), col[:, 3]
    rot = packed[:, 1]
    largest = rot >> 30
    three = np.stack([(unorm(rot >> s, 10) - 0.5) * math.sqrt(2) for s in (20, 10, 0)], axis=1)
    quats = np.zeros((n, 4))
    for i in range(n):
        others = [k for k in range(4) if k != largest[i]]
        quats[i, others] = three[i]
        quats[i, largest[i]] = math.sqrt(max(0.0, 1 - (three[i] ** 2).sum()))
    return {"means": pos, "log_scales": log_scales, "rgb": rgb, "alpha": alpha, "quats": quats,
            "elements": [e.name for e in header.elements], "chunks": chunks}


def test_compressed_ply_reads_back_within_its_quantisation(tmp_path):
    result = export(RED_CUBE, "--format", "ply-compressed", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    got = read_compressed_ply(tmp_path / "red-cube.compressed.ply")
    want = expected_in_viewer_frame(RED_CUBE)
    assert got["elements"] == ["chunk", "vertex"]  # degree 0: no empty `sh` element for readers to trip on
    assert len(got["means"]) == len(want["means"])
    idx = match(got["means"], want["means"])
    extent = np.ptp(want["means"], axis=0)
    assert (np.abs(got["means"] - want["means"][idx]) <= extent / 1023 + 1e-6).all()  # 10-11 bits per axis
    assert np.abs(got["log_scales"] - want["log_scales"][idx]).max() < 0.01
    assert np.abs(got["rgb"] - want["rgb"][idx]).max() <= 1.5 / 255
    assert np.abs(got["alpha"] - want["alpha"][idx]).max() <= 1.5 / 255
    cov = covariances(got["quats"], np.exp(got["log_scales"]))
    size = np.exp(want["log_scales"][idx]).max(axis=1)[:, None, None] ** 2
    assert (np.abs(cov - want["cov"][idx]) / size).max() < 0.02  # 10-bit quaternion components


# ----------------------------------------------------------------------------------------------------------------
# Meshes of shapes whose surface is known
# ----------------------------------------------------------------------------------------------------------------


def toy_scene(tmp_path: Path, shape: str, floaters: bool = False) -> tuple[Path, dict]:
    """A red toy-world object as a .ply, and its raw Gaussians (without the floaters, if asked for)."""
    from lucidkit.toyworld.objects import ToyObject, build

    splats = build(ToyObject(shape, "red"))
    written = splats
    if floaters:  # 4 far away (beyond the robust bounds) and a small opaque blob 0.15 off the +x face
        far = torch.tensor([[3.0, 0, 0], [-3.0, 1, 0], [0, 3.0, 2], [0, 0, -4.0]])
        blob = torch.tensor([0.5, 0.0, 0.0]) + 0.01 * torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
        extra = torch.cat([far, blob])
        n = len(extra)
        written = {k: torch.cat([v, v[:1].expand(n, *v.shape[1:])]) for k, v in splats.items()}
        written["means"][-n:] = extra
    path = tmp_path / f"{shape}.ply"
    write_ply(path, written, with_normals=False)
    return path, splats


def true_distance(shape: str, means: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Unsigned distance of `points` to the true surface of the toy `shape` (a box or a sphere), whose fitted
    Gaussians' centres are `means` (the object is centred at the origin)."""
    if shape == "sphere":
        return np.abs(np.linalg.norm(points, axis=1) - np.linalg.norm(means, axis=1).mean())
    half = np.abs(means).max(axis=0)  # the box's half sizes
    q = np.abs(points) - half
    outside = np.linalg.norm(np.maximum(q, 0), axis=1)
    return np.abs(outside + np.minimum(q.max(axis=1), 0))


@pytest.mark.parametrize("shape", ["cube", "sphere"])
def test_mesh_lies_on_the_true_surface_with_the_gaussians_colours(tmp_path, shape):
    import trimesh

    ply, splats = toy_scene(tmp_path, shape, floaters=shape == "cube")  # floaters must not become mesh
    result = export(ply, "--format", "mesh-ply", "--resolution", 96, "--faces", 3000)
    assert result.exit_code == 0, result.output
    mesh = trimesh.load(tmp_path / f"{shape}.mesh.ply", process=False)
    assert 1000 <= len(mesh.faces) <= 3000
    means = splats["means"].double().numpy()
    size = np.ptp(means, axis=0).max()
    from scipy.spatial import cKDTree

    samples = mesh.sample(200_000, seed=0)  # about one point per 0.2% of the object's size
    to_truth = true_distance(shape, means, samples).mean()  # mesh -> true surface
    to_mesh = cKDTree(samples).query(means)[0]  # true surface (the discs' centres) -> mesh
    chamfer = 0.5 * (to_truth + to_mesh.mean())
    assert chamfer < 0.02 * size, (chamfer, size)
    assert to_mesh.max() < 0.06 * size  # no part of the object is missing
    assert mesh.is_watertight and len(mesh.split(only_watertight=False)) == 1
    rgb = mesh.visual.vertex_colors[:, :3] / 255.0
    want = (0.5 + C0 * splats["sh0"][:, 0, :]).double().numpy().mean(axis=0)
    assert np.abs(rgb.mean(axis=0) - want).max() < 0.05
    assert (rgb[:, 0] > 3 * rgb[:, 1]).mean() > 0.98  # red everywhere


def test_glb_is_y_up_with_linear_colours_and_obj_keeps_the_frame(tmp_path):
    import trimesh

    ply, splats = toy_scene(tmp_path, "cube")
    means = splats["means"].double().numpy() + np.array([0.0, 0.0, 1.0])  # lift the cube 1 unit up (+z)
    splats["means"] = torch.from_numpy(means).float()
    write_ply(ply, splats, with_normals=False)
    result = export(ply, "--format", "glb,obj", "--out", tmp_path / "out", "--resolution", 64, "--faces", 2000)
    assert result.exit_code == 0, result.output
    glb = trimesh.load(tmp_path / "out" / "cube.glb", force="mesh", process=False)
    obj = trimesh.load(tmp_path / "out" / "cube.obj", process=False)
    obj_centre, glb_centre = obj.bounds.mean(axis=0), glb.bounds.mean(axis=0)  # bounding-box centres
    np.testing.assert_allclose(obj_centre, [0, 0, 1], atol=0.02)  # OBJ: the file's frame, z up
    np.testing.assert_allclose(glb_centre, [0, 1, 0], atol=0.02)  # glTF: y up
    srgb = obj.visual.vertex_colors[:, 0].mean() / 255
    linear = glb.visual.vertex_colors[:, 0].mean() / 255
    assert linear < srgb - 0.1  # glTF vertex colours are linear: darker numbers for the same red


def test_all_formats_from_a_run_folder_land_next_to_scene_ply(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "scene.ply").write_bytes(RED_CUBE.read_bytes())
    result = export(run, "--format", "all", "--resolution", 48, "--faces", 500)
    assert result.exit_code == 0, result.output
    for name in ("scene.splat", "scene.compressed.ply", "scene.glb", "scene.obj", "scene.mesh.ply"):
        assert (run / name).stat().st_size > 1000, name
        assert str(run / name) in result.output
    assert (run / "scene.ply").read_bytes() == RED_CUBE.read_bytes()  # the input is only read


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------


def test_bad_input_gives_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    not_ply = tmp_path / "notes.ply"
    not_ply.write_text("hello\n")
    one_line_error(export(not_ply, "--format", "splat", "--out", out), "not a PLY")
    truncated = tmp_path / "truncated.ply"
    truncated.write_bytes(RED_CUBE.read_bytes()[:-1000])
    one_line_error(export(truncated, "--format", "glb", "--out", out), "truncated")
    one_line_error(export(RED_CUBE, "--format", "splat,fbx", "--out", out), "unknown export format 'fbx'")
    one_line_error(export(tmp_path / "missing.ply", "--out", out), "no such file")
    one_line_error(export(tmp_path, "--out", out), "without a scene.ply")
    one_line_error(export(RED_CUBE, "--format", "glb", "--out", tmp_path / "cube.obj"), "must end in .glb")
    one_line_error(export(RED_CUBE, "--format", "splat,glb", "--out", tmp_path / "cube.glb"), "pass a folder")
    copy = tmp_path / "copy" / "scene.ply"
    copy.parent.mkdir()
    copy.write_bytes(RED_CUBE.read_bytes())
    one_line_error(export(copy, "--format", "mesh-ply", "--out", copy), "is the input file")
    assert copy.read_bytes() == RED_CUBE.read_bytes()
    shutil.rmtree(copy.parent)
    assert not out.exists() and not (tmp_path / "cube.obj").exists()
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder is needed")
    one_line_error(export(RED_CUBE, "--format", "splat", "--out", blocker / "sub"), "cannot write")
    assert blocker.read_text() == "a file where a folder is needed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "notes.ply", "truncated.ply"]


def test_generate_refuses_an_unknown_export_format_before_running(tmp_path):
    result = CliRunner().invoke(cli, ["generate", "a red cube", "--export", "splat,stl", "--out", str(tmp_path / "r")])
    one_line_error(result, "unknown export format 'stl'")
    assert not (tmp_path / "r").exists()


def test_generate_exports_at_the_end_of_a_run(tiny_prior_dir, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["generate", "a red cube", "--model", str(tiny_prior_dir), "--preset", "tiny",
                                      "--out", str(out), "--quiet", "--export", "splat,ply-compressed"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    n = read_ply(out / "scene.ply").num_gaussians
    assert (out / "scene.splat").stat().st_size == 32 * n
    assert read_compressed_ply(out / "scene.compressed.ply")["means"].shape == (n, 3)
