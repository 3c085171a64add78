"""The OpenPose condition: keypoints where the joints project, left and right kept, hidden points dropped, and
the drawing of the OpenPose convention (compared with controlnet_aux's where its drawing code can be loaded)."""

import numpy as np
import pytest
import torch

pytest.importorskip("smplx")

from openpose_reference import reference_util  # noqa: E402

from lucidkit.body import skeleton as S  # noqa: E402
from lucidkit.body.pose import load_pose, pose_body  # noqa: E402
from lucidkit.cameras import CameraConfig, eval_ring  # noqa: E402

KP = {name: i for i, name in enumerate(S.KEYPOINT_NAMES)}
SIZE = 256


@pytest.fixture(scope="module")
def t_pose():
    return pose_body(load_pose("t-pose"))


def ring(n: int = 4, size: int = SIZE):
    """Cameras at azimuth 0 (front), 90 (the body's left side), 180 (back), 270 (right side), on the horizon."""
    return eval_ring(n, CameraConfig(), size, size)


def condition(body, cameras):
    kp = S.openpose_keypoints(body.world_joints())
    pixels, visible = S.visibility(kp, body.world_vertices(), body.faces, cameras, body.vertex_joint)
    images = [S.draw_openpose(pixels[c].numpy(), visible[c].numpy(), cameras.height, cameras.width)
              for c in range(len(cameras))]
    return kp, pixels, visible, images


def colour_centroid(image: np.ndarray, colour) -> tuple[np.ndarray, int]:
    ys, xs = np.nonzero((image == np.array(colour, np.uint8)).all(-1))
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5]) if len(xs) else None, len(xs)


def test_keypoints_are_the_issue_mapping(t_pose):
    kp = S.openpose_keypoints(t_pose.joints)
    assert torch.equal(kp[KP["nose"]], t_pose.joints[55]) and torch.equal(kp[KP["left_ear"]], t_pose.joints[59])
    assert torch.equal(kp[KP["right_wrist"]], t_pose.joints[21]) and torch.equal(kp[KP["left_hip"]], t_pose.joints[1])


def test_drawn_keypoints_sit_on_the_projected_joints(t_pose):
    cameras = ring()[0]
    kp, pixels, visible, images = condition(t_pose, cameras)
    # The joints projected by hand with the same camera (world-to-camera, then the pinhole intrinsics).
    R, t, K = cameras.viewmats[0, :3, :3].double(), cameras.viewmats[0, :3, 3].double(), cameras.Ks[0].double()
    cam = kp.double() @ R.T + t
    expected = (cam @ K.T)[:, :2] / cam[:, 2:]
    checked = 0
    for k, name in enumerate(S.KEYPOINT_NAMES):
        assert visible[0, k], f"{name} should be visible from the front"
        others = [j for j in range(18) if j != k and (expected[j] - expected[k]).norm() < 3 * S.stick_width(SIZE, SIZE)]
        if others:  # overlapping discs hide each other's centre
            continue
        centre, count = colour_centroid(images[0], S.COLOURS[k])
        assert count > 0, f"{name} is not drawn"
        assert np.linalg.norm(centre - expected[k].numpy()) <= 1.0, name
        checked += 1
    assert checked >= 12


def test_back_view_mirrors_left_and_right_and_hides_the_face(t_pose):
    cameras = ring()
    _, pixels, visible, images = condition(t_pose, cameras)
    front, back = 0, 2
    # Front: the person's left shoulder is on the image's right; seen from behind it is on the left.
    assert pixels[front, KP["left_shoulder"], 0] > pixels[front, KP["right_shoulder"], 0]
    assert pixels[back, KP["left_shoulder"], 0] < pixels[back, KP["right_shoulder"], 0]
    for image, side in ((images[front], 1), (images[back], -1)):
        left, _ = colour_centroid(image, S.COLOURS[KP["left_wrist"]])
        right, _ = colour_centroid(image, S.COLOURS[KP["right_wrist"]])
        assert side * (left[0] - right[0]) > 50
    for name in ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "left_knee", "right_knee"):
        assert visible[back, KP[name]], name  # the body's own joints show from behind, as OpenPose finds them
    for name in ("nose", "left_eye", "right_eye"):
        assert visible[front, KP[name]] and not visible[back, KP[name]], name
        assert colour_centroid(images[back], S.COLOURS[KP[name]])[1] == 0  # absent from the back view's image
        assert colour_centroid(images[front], S.COLOURS[KP[name]])[1] > 0


def test_the_far_arm_is_hidden_by_the_torso_in_a_side_view():
    body = pose_body(load_pose("arms-down"))
    _, _, visible, _ = condition(body, ring())
    oblique = condition(body, eval_ring(12, CameraConfig(), SIZE, SIZE)[1])[2][0]  # azimuth 30
    assert oblique[KP["left_hip"]] and oblique[KP["right_hip"]]  # hips deep in the pelvis still show
    left_side, right_side = 1, 3  # cameras on the body's left (azimuth 90) and right (270)
    for name in ("elbow", "wrist", "hip", "knee"):
        assert visible[left_side, KP[f"left_{name}"]] and not visible[left_side, KP[f"right_{name}"]], name
        assert visible[right_side, KP[f"right_{name}"]] and not visible[right_side, KP[f"left_{name}"]], name


def test_points_behind_the_camera_are_dropped(t_pose):
    cameras = ring(1)
    flipped = cameras.viewmats.clone()
    flipped[:, 2, :] *= -1  # the camera looks away from the body (z forward negated)
    flipped[:, 0, :] *= -1  # keep the frame right-handed
    cameras.viewmats = flipped
    _, _, visible, images = condition(t_pose, cameras)
    assert not visible.any() and not images[0].any()


def test_stick_width_scales_with_resolution():
    assert S.stick_width(512, 512) == 4.0 and S.stick_width(1024, 768) == 6.0 and S.stick_width(64, 64) == 1.0


def test_drawing_matches_controlnet_aux(t_pose, monkeypatch):
    util, keypoint_type = reference_util(monkeypatch)
    draw_bodypose = util.draw_bodypose
    size = 512
    for pose, cam in (("walk", 1), ("t-pose", 0), ("arms-up", 2)):
        body = pose_body(load_pose(pose))
        _, pixels, visible, ours = condition(body, ring(4, size)[cam])
        points = [keypoint_type(float(x) / size, float(y) / size) if v else None
                  for (x, y), v in zip(pixels[0].tolist(), visible[0].tolist())]
        theirs = draw_bodypose(np.zeros((size, size, 3), np.uint8), points)
        a, b = ours[0].any(-1), theirs.any(-1)
        assert (a & b).sum() / (a | b).sum() > 0.8, pose
        same_colour = (ours[0] == theirs).all(-1)
        assert same_colour[a & b].mean() > 0.9, pose
