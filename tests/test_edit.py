"""`lucidkit edit`: frames that round-trip, regions that leave the rest bit-identical, an input that is never touched,
one clear error per bad input, resume; and (slow tier) a toy-prior edit that really turns a red cube blue."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import interrupted_at, one_line_error
from lucidkit.camera_files import CameraSet, read_camera_file
from lucidkit.cameras import look_at
from lucidkit.commands.cli import cli
from lucidkit.edit.source import parse_region
from lucidkit.splat.ply import read_ply, read_vertices, write_ply, write_vertices
from lucidkit.splat.render import render
from lucidkit.splat.scene import activated, num_sh_bases
from lucidkit.splat.transform import UP_ROTATIONS, SceneFrame, sh_rotation

TINY_PRESET = """\
loop: {steps: 4, batch_size: 2}
guidance: {anneal_steps: 4, xs_inv_steps: 2, t_max_start: 800, t_max_end: 500}
densify: {refine_every: 2, start_iter: 0, stop_iter: 4, grad_threshold: 0.0, opacity_reset_every: 3}
output: {preview_every: 2, checkpoint_every: 2, eval_views: 2, turntable_frames: 2, fps: 2}
"""  # grad_threshold 0 and frequent opacity resets: densification touches every Gaussian it may touch


def blob(n: int, sh_degree: int, seed: int = 0, offset=(0.0, 0.0, 0.0)) -> dict:
    """Random Gaussians in a ball of radius ~1 around `offset`, visible sizes and opacities, random higher SH."""
    g = torch.Generator().manual_seed(seed)
    means = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1) * torch.rand(n, 1, generator=g)
    return {
        "means": means + torch.tensor(offset),
        "scales": torch.log(0.03 + 0.05 * torch.rand(n, 3, generator=g)),
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.logit(0.5 + 0.45 * torch.rand(n, generator=g)),
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": 0.3 * torch.randn(n, num_sh_bases(sh_degree) - 1, 3, generator=g),
    }


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit(*args):
    return CliRunner().invoke(cli, ["edit", *args], catch_exceptions=False)


@pytest.fixture
def tiny(tiny_prior_dir, tmp_path):
    """Arguments that run an edit with the tiny random prior for 4 updates of 2 views of 32²."""
    preset = tmp_path / "tiny-edit.yaml"
    preset.write_text(TINY_PRESET)
    return ["--model", str(tiny_prior_dir), "--preset", str(preset), "--quiet"]


# ----------------------------------------------------------------------------------------------------------------
# Frames: the engine sees the same scene as the file describes, and the way back is exact
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("up", ["z", "y", "-y", "x"])
def test_engine_frame_renders_what_the_file_shows(up):
    """A file-frame camera sees the file's Gaussians exactly as the engine-frame camera sees the engine's: positions,
    rotations, scales and view-dependent colour (SH degree 3) all move with the frame."""
    file_splats = blob(150, sh_degree=3, offset=(2.0, -1.0, 0.5))
    frame = SceneFrame.fit(file_splats, up, fit_radius=0.6, percentile=2.0)
    eye = torch.tensor([[5.0, -3.0, 3.5]])
    view = look_at(eye, torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[0.3, 0.2, 1.0]])).double()
    Ks = torch.tensor([[[40.0, 0, 24], [0, 40.0, 24], [0, 0, 1]]], dtype=torch.float64)
    cams = CameraSet(view, Ks, torch.tensor([48.0]), torch.tensor([48.0]), ["a"], source=None)
    engine_cams = cams.transformed(frame.rotation, frame.center, frame.scale)

    def draw(splats, c):
        a = activated(splats)
        return render(a["means"], a["quats"], a["scales"], a["opacities"], a["sh"], c.viewmats.float(),
                      c.Ks.float(), 48, 48, sh_degree=3).rgb

    before = draw(file_splats, cams)
    after = draw(frame.to_engine(file_splats), engine_cams)
    assert before.std() > 0.05  # the view shows the scene
    assert torch.allclose(before, after, atol=2e-4), (before - after).abs().max()
    back = frame.to_file(frame.to_engine(file_splats))
    for name, values in file_splats.items():
        assert torch.allclose(back[name], values, atol=1e-5, rtol=1e-5), name


def test_engine_frame_is_z_up_centred_and_fitted():
    file_splats = blob(400, sh_degree=0, offset=(10.0, 20.0, 30.0))
    file_splats["means"] = file_splats["means"] * 50.0  # a room-sized scene
    frame = SceneFrame.fit(file_splats, "-y", fit_radius=0.6, percentile=2.0)
    engine = frame.to_engine(file_splats)
    assert engine["means"].mean(dim=0).abs().max() < 0.1
    assert 0.4 < engine["means"].norm(dim=1).quantile(0.98) < 0.8
    # the file's -y is the engine's +z: the lowest Gaussian in file y is the highest in engine z
    assert int(file_splats["means"][:, 1].argmin()) == int(engine["means"][:, 2].argmax())


def test_sh_rotation_is_orthogonal_and_composes():
    for up in ("y", "-y", "x"):
        rot = torch.tensor(UP_ROTATIONS[up], dtype=torch.float64)
        m = sh_rotation(rot, 3)  # [15, 15]
        assert torch.allclose(m @ m.T, torch.eye(15, dtype=torch.float64), atol=1e-9)
        assert torch.allclose(sh_rotation(rot @ rot, 3), m @ m, atol=1e-9)


def test_region_syntax():
    inside = parse_region("box:1,1,1,-1,-1,-1").contains(torch.tensor([[0.0, 0, 0], [0, 0, 1.5]]))
    assert inside.tolist() == [True, False]
    assert parse_region("sphere:0,0,1,0.6").contains(torch.tensor([[0.0, 0, 0.5], [0, 0, 0]])).tolist() == [True, False]


# ----------------------------------------------------------------------------------------------------------------
# Cameras
# ----------------------------------------------------------------------------------------------------------------


def camera_files(tmp_path, viewmats):
    """The same cameras written as an INRIA cameras.json and a nerfstudio transforms.json."""
    c2w = torch.linalg.inv(viewmats.double())  # [C, 4, 4] OpenCV axes
    inria = [{"id": i, "img_name": f"{i:03d}", "width": 80, "height": 60, "position": c[:3, 3].tolist(),
              "rotation": c[:3, :3].tolist(), "fx": 70.0, "fy": 70.0} for i, c in enumerate(c2w)]
    gl = c2w @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))  # OpenGL axes
    ns = {"fl_x": 70.0, "fl_y": 70.0, "cx": 40.0, "cy": 30.0, "w": 80, "h": 60,
          "frames": [{"file_path": f"images/{i:03d}.png", "transform_matrix": c.tolist()} for i, c in enumerate(gl)]}
    (tmp_path / "cameras.json").write_text(json.dumps(inria))
    (tmp_path / "transforms.json").write_text(json.dumps(ns))
    return tmp_path / "cameras.json", tmp_path / "transforms.json"


def ring_viewmats(n: int, center=(0.0, 0.0, 0.0), radius=3.0, up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    angles = torch.arange(n) * (2 * math.pi / n)
    eye = torch.stack([radius * torch.cos(angles), radius * torch.sin(angles), torch.full((n,), 0.8)], dim=1)
    eye = eye + torch.tensor(center)
    return look_at(eye, torch.tensor(center).expand(n, 3), torch.tensor(up).expand(n, 3))


def test_inria_and_nerfstudio_camera_files_agree(tmp_path):
    views = ring_viewmats(5)
    inria, ns = camera_files(tmp_path, views)
    a, b = read_camera_file(inria), read_camera_file(ns)
    assert torch.allclose(a.viewmats.float(), views, atol=1e-5) and torch.allclose(b.viewmats.float(), views, atol=1e-5)
    assert torch.allclose(a.Ks, b.Ks) and a.names[0] == "000"
    batch = a.batch(torch.tensor([0, 1]), 32)
    assert batch.width == 32 and batch.azimuth_deg.tolist() == pytest.approx([0.0, 72.0], abs=1e-3)
    assert batch.fovy_rad[0].item() == pytest.approx(2 * math.atan(30 / 70), abs=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# End to end with the tiny random prior
# ----------------------------------------------------------------------------------------------------------------


def test_region_edit_changes_only_the_region(tiny, tmp_path):
    """A gsplat-exported SH-3 scene (no normals), y-up, its own cameras: only Gaussians inside the box change, the
    rest come out bit-identical, densification happened inside, and the input file is untouched."""
    from gsplat import export_splats

    splats = blob(300, sh_degree=3, seed=2)
    scene = tmp_path / "gsplat.ply"
    export_splats(**splats, format="ply", save_to=str(scene))
    before = sha(scene)
    _, transforms = camera_files(tmp_path, ring_viewmats(6, up=(0.0, 1.0, 0.0)))  # y-up cameras around the blob
    region = "box:-2,0.2,-2,2,2,2"  # the top (file +y) of the blob
    out = tmp_path / "run"
    result = edit(str(scene), "--prompt", "a blue cube", "--region", region, "--up", "y", "--cameras",
                  str(transforms), "--out", str(out), *tiny)
    assert result.exit_code == 0, result.output
    assert sha(scene) == before

    inside = parse_region(region).contains(splats["means"])
    written = read_ply(out / "scene.ply")
    assert written.sh_degree == 3 and not written.has_normals
    rows_in = read_vertices(scene)
    rows_out = read_vertices(out / "scene.ply")
    assert list(rows_in) == list(rows_out)  # the same properties in the same order (gsplat's layout, no normals)

    def row_bytes(columns, mask=None):
        table = np.stack([columns[k] for k in columns], axis=1).astype("<f4")  # [N, P]
        return [r.tobytes() for r in (table if mask is None else table[mask])]

    outside = sorted(row_bytes(rows_in, ~inside.numpy()))
    written_rows = row_bytes(rows_out)
    kept = [r for r in written_rows if r in set(outside)]
    assert sorted(kept) == outside  # every outside Gaussian, bit for bit, exactly once
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["frozen_gaussians"] == int((~inside).sum())
    assert manifest["edited_gaussians"] > int(inside.sum())  # densified, inside the region only
    assert len(written_rows) == manifest["gaussians"]
    inside_rows = set(row_bytes(rows_in, inside.numpy()))
    assert not any(r in inside_rows for r in written_rows)  # every editable Gaussian changed
    for name in ("scene.ply", "preview.png", "before_after.mp4", "config.yaml", "checkpoint.pt"):
        assert (out / name).stat().st_size > 0, name
    # Inside the loop too, frozen Gaussians never changed (densification, pruning and opacity resets included).
    from lucidkit.config import from_dict, load_yaml
    from lucidkit.edit.config import EditConfig
    from lucidkit.edit.source import load_source

    source = load_source(from_dict(EditConfig, load_yaml(out / "config.yaml")).scene)
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    frozen, index = checkpoint["frozen"], checkpoint["strategy_state"]["anchor_index"]
    for name, values in source.engine_splats("cpu").items():
        assert torch.equal(checkpoint["splats"][name][frozen], values[index[frozen]]), name


def test_resume_continues_to_the_same_result(tiny, tmp_path):
    splats = blob(200, sh_degree=0, seed=3)
    scene = write_ply(tmp_path / "in.ply", splats, normals=torch.randn(200, 3), with_normals=True)
    args = [str(scene), "--prompt", "a red cube", "--source-prompt", "a cube", *tiny]
    full = tmp_path / "full"
    assert edit(*args, "--out", str(full)).exit_code == 0

    part = tmp_path / "part"
    with interrupted_at(2):
        result = edit(*args, "--out", str(part))
    assert result.exit_code == 2 and "interrupted at step 2/4" in result.output and "--resume" in result.output
    result = edit("--resume", str(part), "--quiet")
    assert result.exit_code == 0, result.output
    a, b = read_ply(full / "scene.ply"), read_ply(part / "scene.ply")
    assert b.has_normals and json.loads((part / "manifest.json").read_text())["resumed_from_step"] == 2
    for key in a.splats:
        assert torch.allclose(a.splats[key], b.splats[key], atol=1e-5), key
    write_ply(scene, blob(200, sh_degree=0, seed=4))  # the input changes under the run: continuing must refuse
    result = edit("--resume", str(part), "--steps", "6", "--quiet")
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith("Error:")
    assert "changed since" in result.output and "Traceback" not in result.output


def test_bad_input_gives_one_clear_line_and_touches_nothing(tiny, tmp_path):
    good = write_ply(tmp_path / "good.ply", blob(50, 0))
    columns = read_vertices(good)
    text = tmp_path / "notes.ply"
    text.write_text("hello\n")
    cloud = write_vertices(tmp_path / "cloud.ply", {k: columns[k] for k in ("x", "y", "z")})
    nan = dict(columns)
    nan["opacity"] = nan["opacity"].copy()
    nan["opacity"][7] = np.nan
    nan_ply = write_vertices(tmp_path / "nan.ply", nan)
    truncated = tmp_path / "truncated.ply"
    truncated.write_bytes(good.read_bytes()[:-100])
    bad_cams = tmp_path / "cams.json"
    bad_cams.write_text('{"w": 10}')
    cases = [
        ([str(text)], "not a PLY"),
        ([str(cloud)], "missing vertex properties"),
        ([str(nan_ply)], "NaN"),
        ([str(truncated)], "truncated"),
        ([str(tmp_path / "missing.ply")], "no such file"),
        ([str(good), "--region", "box:5,5,5,6,6,6"], "contains none of the 50 Gaussians"),
        ([str(good), "--region", "box:1,2,3"], "box:x0,y0,z0,x1,y1,z1"),
        ([str(good), "--region", "cube:0,0,0,1,1,1"], "--region"),
        ([str(good), "--cameras", str(bad_cams)], "cams.json"),
    ]
    for i, (args, words) in enumerate(cases):
        out = tmp_path / f"run{i}"
        one_line_error(edit(*args, "--prompt", "a blue cube", "--out", str(out), *tiny), words)
        assert not out.exists()  # no half-made run folder
    one_line_error(edit(str(good), "--prompt", "  ", *tiny), "prompt is empty")
    one_line_error(edit("--prompt", "a blue cube", *tiny), "no scene")


# ----------------------------------------------------------------------------------------------------------------
# Quality with the toy prior (the user-visible claim; ~1.5 min on two CPU cores, the toy preset as users run it)
# ----------------------------------------------------------------------------------------------------------------


def test_toy_red_cube_turns_blue_and_keeps_its_shape(tmp_path):
    from lucidkit.cameras import CameraConfig, eval_ring
    from lucidkit.runs import render_views
    from lucidkit.toyworld.captions import object_of_prompt
    from lucidkit.toyworld.evaluator import ToyEvaluator
    from lucidkit.toyworld.objects import build

    scene = write_ply(tmp_path / "red_cube.ply", build(object_of_prompt("a red cube")), with_normals=False)
    out = tmp_path / "run"
    result = edit(str(scene), "--prompt", "a blue cube", "--source-prompt", "a red cube", "--out", str(out),
                  "--quiet", "--set", "output.turntable_frames=0")
    assert result.exit_code == 0, result.output
    cams = [eval_ring(8, CameraConfig(), 64, 64, polar_deg=p) for p in (90.0, 60.0)]
    views = {name: [render_views(read_ply(path).splats, c) for c in cams]
             for name, path in (("before", scene), ("after", out / "scene.ply"))}
    after_rgb = torch.cat([v[0] for v in views["after"]])
    colours = ToyEvaluator.load().predict(after_rgb)["colour"]
    assert sum(c == "blue" for c in colours) / len(colours) >= 0.75, colours
    mask_before = torch.cat([v[1] for v in views["before"]]) > 0.5
    mask_after = torch.cat([v[1] for v in views["after"]]) > 0.5
    iou = float((mask_before & mask_after).sum() / (mask_before | mask_after).sum())
    assert iou >= 0.8, iou
