"""The built-in procedural body: an SMPL-X-format file that the real smplx package loads and poses."""

from pathlib import Path

import numpy as np
import pytest
import torch

smplx = pytest.importorskip("smplx")

from smplx.joint_names import JOINT_NAMES  # noqa: E402
from smplx.vertex_ids import vertex_ids  # noqa: E402

from lucidkit.body import procedural  # noqa: E402
from lucidkit.body.pose import builtin_models_dir  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A body file made by the test (the builder, not the shipped sample), in smplx's folder layout."""
    root = tmp_path_factory.mktemp("models")
    (root / "smplx").mkdir()
    procedural.write_body(root / "smplx" / "SMPLX_NEUTRAL.npz")
    return root


@pytest.fixture(scope="module")
def model(model_dir):
    return smplx.create(str(model_dir), model_type="smplx", ext="npz", use_pca=False, num_betas=10)


def test_smplx_loads_the_synthetic_body_with_smplx_layout(model):
    out = model(return_verts=True)
    assert out.vertices.shape == (1, 10475, 3)
    assert out.joints.shape == (1, 127, 3)  # 55 joints + 21 vertex-selected extras + 51 face landmarks
    assert list(procedural.JOINT_NAMES) == list(JOINT_NAMES[:55])
    assert model.parents.tolist() == [-1] + list(procedural.PARENTS[1:])
    # Our extra-joint ids are smplx's; the vertex there is where the name says on our surface.
    assert procedural.EXTRA_VERTEX_IDS == vertex_ids["smplx"]
    joints = out.joints[0]
    names = JOINT_NAMES
    nose, head = joints[names.index("nose")], joints[names.index("head")]
    assert nose[2] > head[2] + 0.08  # the nose sticks out at the front (+z)
    assert joints[names.index("left_ear")][0] > 0.08 > -0.08 > joints[names.index("right_ear")][0]
    assert joints[names.index("left_heel")][2] < joints[names.index("left_big_toe")][2]  # toes point forward


def test_rest_pose_is_an_upright_t_pose(model):
    joints = model(return_verts=True).joints[0].detach()
    names = JOINT_NAMES
    j = {n: joints[names.index(n)] for n in ("head", "left_ankle", "left_wrist", "right_wrist", "left_shoulder")}
    assert j["head"][1] - j["left_ankle"][1] > 1.3  # metres, y up
    assert abs(float(j["left_wrist"][1] - j["left_shoulder"][1])) < 0.02  # arms level
    assert j["left_wrist"][0] > 0.6 and j["right_wrist"][0] < -0.6  # the body's left is +x


def test_posing_moves_the_limb_and_only_it(model):
    names = JOINT_NAMES
    rest = model(return_verts=True)
    body_pose = torch.zeros(1, 63)
    body_pose[0, 3 * (names.index("left_shoulder") - 1) + 2] = -1.2  # left arm down about z
    posed = model(body_pose=body_pose, return_verts=True)
    lw, rw = names.index("left_wrist"), names.index("right_wrist")
    assert posed.joints[0, lw, 1] < rest.joints[0, lw, 1] - 0.3  # the left hand went down
    assert torch.allclose(posed.joints[0, rw], rest.joints[0, rw], atol=1e-5)  # the right did not move
    moved = (posed.vertices[0] - rest.vertices[0]).norm(dim=1) > 0.01
    left_arm = rest.vertices[0, :, 0] > 0.3
    assert moved[left_arm].float().mean() > 0.95 and not moved[rest.vertices[0, :, 0] < -0.05].any()


def test_betas_change_height_and_girth(model):
    def extent(betas):
        with torch.no_grad():
            v = model(betas=torch.tensor([betas], dtype=torch.float32), return_verts=True).vertices[0]
        waist = v[(v[:, 1] - 0.1).abs() < 0.02]  # the torso at the waist (arms are at y = 0.42)
        return float(v[:, 1].max() - v[:, 1].min()), float(waist[:, 0].max() - waist[:, 0].min())

    height0, waist0 = extent([0.0] * 10)
    height_tall, _ = extent([2.0] + [0.0] * 9)
    height_wide, waist_wide = extent([0.0, 2.0] + [0.0] * 8)
    assert height_tall > 1.06 * height0
    assert waist_wide > 1.15 * waist0 and abs(height_wide - height0) < 0.03 * height0


def test_shipped_body_is_small_has_zero_correctives_and_matches_the_builder():
    path = builtin_models_dir() / "smplx" / "SMPLX_NEUTRAL.npz"
    assert path.stat().st_size < 3e6
    shipped = np.load(path)
    assert not shipped["posedirs"].any()
    built = procedural.body_arrays()
    for key in ("v_template", "f", "weights", "J_regressor", "kintree_table"):
        assert np.array_equal(shipped[key], built[key]), f"{key} differs: rerun python -m tools.avatar.make_body"
    weights = shipped["weights"].astype(np.float64)
    used = np.unique(shipped["f"])
    assert np.allclose(weights[used].sum(1), 1.0, atol=1e-5)
