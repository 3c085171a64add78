"""Pose input: built-in poses, SMPL-X parameter files, AMASS-style sequences, the frames, and every bad input."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("smplx")

from lucidkit.body import pose as P  # noqa: E402
from lucidkit.errors import UserError  # noqa: E402

NECK, L_WRIST, R_WRIST, L_SHOULDER, HEAD, L_ANKLE, NOSE = 12, 20, 21, 16, 15, 7, 55


def test_every_builtin_pose_loads_and_fits_the_orbit():
    names = P.builtin_pose_names()
    assert {"t-pose", "a-pose", "arms-down", "arms-up", "walk", "sit", "wave"} <= set(names)
    for name in names:
        body = P.pose_body(P.load_pose(name))
        assert body.vertices.shape == (10475, 3) and body.joints.shape == (127, 3) and body.faces.shape[1] == 3
        radius = body.vertices[torch.unique(body.faces)].norm(dim=1).max()
        assert float(radius) == pytest.approx(P.DEFAULT_FIT_RADIUS, rel=0.02)
        assert body.joints[HEAD, 1] > body.joints[L_ANKLE, 1] + 0.3  # upright, y up (SMPL-X frame)


def test_t_pose_and_arms_down_differ_where_the_arms_are():
    t, down = (P.pose_body(P.load_pose(n)) for n in ("t-pose", "arms-down"))
    assert abs(float(t.joints[L_WRIST, 1] - t.joints[L_SHOULDER, 1])) < 0.02  # level arms
    assert down.joints[L_WRIST, 1] < down.joints[L_SHOULDER, 1] - 0.25  # hanging arms
    width = lambda b: float(b.vertices[:, 0].max() - b.vertices[:, 0].min())  # noqa: E731
    assert width(t) > 2 * width(down)


def test_world_frame_is_z_up_facing_plus_x_with_the_left_on_plus_y():
    # The conversion itself: a proper rotation taking front (+z) to +x, up (+y) to +z, left (+x) to +y.
    axes = torch.eye(3)
    assert torch.equal(P.to_world(axes[2]), axes[0]) and torch.equal(P.to_world(axes[1]), axes[2])
    assert torch.equal(P.to_world(axes[0]), axes[1])
    assert float(torch.linalg.det(P.SMPLX_TO_WORLD)) == pytest.approx(1.0)
    points = torch.randn(5, 3)
    assert torch.allclose(P.from_world(P.to_world(points)), points)
    # On a posed body: the nose is at the front (+x), the head on top (+z), the left hand on +y.
    world = P.pose_body(P.load_pose("t-pose")).world_joints()
    assert world[NOSE, 0] > world[HEAD, 0] + 0.03
    assert world[HEAD, 2] > world[L_ANKLE, 2] + 0.5
    assert world[L_WRIST, 1] > 0.3 > -0.3 > world[R_WRIST, 1]


def test_parameter_files_npz_and_json(tmp_path):
    body_pose = np.zeros(63, np.float32)
    body_pose[3 * 15 + 2] = -1.2  # left shoulder down
    betas = np.zeros(300, np.float32)
    betas[0] = 2.0  # taller: with 300 betas the built-in body takes its first components
    np.savez(tmp_path / "p.npz", global_orient=np.zeros((1, 3)), body_pose=body_pose[None], betas=betas)
    (tmp_path / "p.json").write_text(json.dumps({"body_pose": body_pose.tolist(), "betas": [0.0] * 10}))
    from_npz, from_json = P.load_pose(tmp_path / "p.npz"), P.load_pose(str(tmp_path / "p.json"))
    assert np.allclose(from_npz.body_pose, body_pose) and from_npz.betas.shape == (300,)
    assert np.allclose(from_json.body_pose, body_pose)
    tall, plain = P.pose_body(from_npz, fit_radius=1.0), P.pose_body(from_json, fit_radius=1.0)
    assert tall.scale < plain.scale * 0.97  # the same fit radius needs a smaller scale for a taller body
    assert tall.joints[L_WRIST, 1] < tall.joints[L_SHOULDER, 1] - 0.2


def test_amass_sequence_frame_is_upright(tmp_path):
    frames = 5
    poses = np.zeros((frames, 156), np.float32)
    poses[:, 0] = math.pi / 2  # AMASS: a standing body is turned +90 degrees about x into its z-up world
    poses[3, 3 * 16 + 2] = -1.2  # frame 3: left shoulder down (body joint 16 -> offset 3 + 15 * 3)
    np.savez(tmp_path / "walk.npz", poses=poses, trans=np.zeros((frames, 3)), betas=np.zeros(16))
    params = P.load_pose(tmp_path / "walk.npz", frame=3)
    assert np.allclose(params.global_orient, 0.0, atol=1e-6)  # back to SMPL-X's y-up frame
    assert params.betas.shape == (16,) and params.body_pose[3 * 15 + 2] == pytest.approx(-1.2)
    body = P.pose_body(params)
    assert body.joints[HEAD, 1] > body.joints[L_ANKLE, 1] + 0.3
    assert body.joints[L_WRIST, 1] < body.joints[L_SHOULDER, 1] - 0.2


@pytest.mark.parametrize(
    "content, frame, message",
    [
        ({"body_pose": [0.0] * 60}, None, "body_pose must have 63 numbers, got 60"),
        ({"body_pose": [0.0] * 62 + [float("nan")]}, None, "body_pose has NaN"),
        ({"body_pose": [0.0] * 63, "betas": [0.0] * 301}, None, "betas must have 1 to 300 numbers"),
        ({"body_pose": [0.0] * 63, "left_hand_pose": [0.0] * 12}, None, "PCA hand poses are not supported"),
        ({"betas": [0.0] * 10}, None, "expected SMPL-X parameters"),
        ({"body_pose": [0.0] * 63}, 5, "holds one pose, not a sequence"),
        ({"poses": np.zeros((4, 156))}, 4, "frame 4 is out of range; the sequence has 4 frames"),
        ({"poses": np.zeros((4, 100))}, None, "poses must be [frames, 66 | 72 | 156 | 165]"),
    ],
)
def test_bad_pose_files_name_the_problem(tmp_path, content, frame, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: np.asarray(v, dtype=np.float64) for k, v in content.items()})
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("|", r"\|")):
        P.load_pose(path, frame=frame)


def test_unknown_names_missing_and_broken_files(tmp_path):
    with pytest.raises(UserError, match="unknown pose 'dab': expected one of a-pose, arms-down"):
        P.load_pose("dab")
    with pytest.raises(UserError, match="does not exist"):
        P.load_pose(tmp_path / "nope.npz")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(UserError, match="is not valid JSON"):
        P.load_pose(tmp_path / "broken.json")


def test_body_model_folder_from_option_or_environment(tmp_path, monkeypatch):
    builtin = P.builtin_models_dir()
    folder, what = P.resolve_models_dir(None)
    assert folder == builtin and "built-in" in what
    (tmp_path / "smplx").mkdir()
    shutil.copy(builtin / "smplx" / "SMPLX_NEUTRAL.npz", tmp_path / "smplx" / "SMPLX_NEUTRAL.npz")
    monkeypatch.setenv(P.ENV_MODELS, str(tmp_path))
    assert P.resolve_models_dir(None)[0] == tmp_path
    assert P.resolve_models_dir(tmp_path / "smplx")[0] == tmp_path  # the smplx folder itself is accepted
    body = P.pose_body(P.load_pose("a-pose"))
    assert "SMPL-X neutral from" in body.model


def test_missing_body_model_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(P.ENV_MODELS, raising=False)
    with pytest.raises(UserError, match=r"no SMPL-X body model in .*--smplx-models.*smpl-x\.is\.tue\.mpg\.de"):
        P.resolve_models_dir(tmp_path)
    with pytest.raises(UserError, match="FEMALE"):
        P.resolve_models_dir(tmp_path, gender="female")
    (tmp_path / "smplx").mkdir()
    (tmp_path / "smplx" / "SMPLX_NEUTRAL.pkl").write_bytes(b"")
    with pytest.raises(UserError, match="needs chumpy"):
        P.resolve_models_dir(tmp_path)
    monkeypatch.setenv(P.ENV_MODELS, str(tmp_path / "elsewhere"))
    with pytest.raises(UserError, match=r"\$LUCIDKIT_SMPLX_MODELS"):
        P.pose_body(P.load_pose("t-pose"))


def test_missing_smplx_package_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "smplx", None)
    P._load_model.cache_clear()
    try:
        with pytest.raises(UserError, match=r"pip install 'lucidkit\[avatar\]'"):
            P.pose_body(P.load_pose("t-pose"))
    finally:
        P._load_model.cache_clear()


def test_a_broken_body_model_file_is_one_line(tmp_path):
    (tmp_path / "smplx").mkdir()
    (tmp_path / "smplx" / "SMPLX_NEUTRAL.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot load the SMPL-X body model"):
        P.pose_body(P.load_pose("t-pose"), models_dir=tmp_path)
