"""OpenPose hand keypoints of the posed body: where the hand joints project, in OpenPose's order, left and right
kept, drawn in OpenPose's hand convention (compared with controlnet_aux's draw_handpose where it loads)."""

import numpy as np
import pytest
import torch

pytest.importorskip("smplx")

from openpose_reference import reference_util  # noqa: E402

from lucidkit.body import hands as H  # noqa: E402
from lucidkit.body import skeleton as S  # noqa: E402
from lucidkit.body.pose import load_pose, pose_body  # noqa: E402
from lucidkit.cameras import CameraConfig, eval_ring  # noqa: E402

SIZE = 512
BODY = len(S.KEYPOINT_NAMES)


@pytest.fixture(scope="module")
def t_pose():
    return pose_body(load_pose("t-pose"))


def hand_condition(body, cameras):
    """(keypoints [60, 3], pixels [C, 60, 2], visible [C, 60], images) with both hands."""
    kp = S.openpose_keypoints(body.world_joints(), hands=True)
    pixels, visible = S.visibility(kp, body.world_vertices(), body.faces, cameras, body.vertex_joint,
                                   S.keypoint_joint_ids(hands=True))
    images = [S.draw_openpose(pixels[c].numpy(), visible[c].numpy(), cameras.height, cameras.width)
              for c in range(len(cameras))]
    return kp, pixels, visible, images


def test_hand_keypoints_are_the_hand_joints_in_openpose_order(t_pose):
    joints = t_pose.joints
    kp = S.openpose_keypoints(joints, hands=True)[BODY:]  # [42, 3]
    for hand, side in ((kp[:21], "left"), (kp[21:], "right")):
        wrist = joints[20 if side == "left" else 21]
        assert torch.equal(hand[0], wrist)  # the same point as the body's wrist keypoint
        for f in range(5):  # T-pose, straight fingers: each finger's 4 keypoints run from the palm outwards
            reach = (hand[4 * f + 1: 4 * f + 5] - wrist).norm(dim=1)
            assert bool((reach[1:] > reach[:-1]).all()), (side, H.OPENPOSE_FINGERS[f])
        # the fingertips (vertex-selected) lie past the last finger joint, within a finger segment of it
        tips, last = hand[4::4], hand[3::4]
        assert float((tips - last).norm(dim=1).max()) < 0.05
        # the thumb points forward (the body faces +z in SMPL-X), the other fingers out to the side
        assert float(hand[4, 2] - wrist[2]) > float(hand[8, 2] - wrist[2])


def test_hand_keypoints_project_to_the_posed_hand_joints(t_pose):
    cameras = eval_ring(4, CameraConfig(), SIZE, SIZE)[0]  # the front
    kp, pixels, visible, images = hand_condition(t_pose, cameras)
    R, t, K = cameras.viewmats[0, :3, :3].double(), cameras.viewmats[0, :3, 3].double(), cameras.Ks[0].double()
    cam = kp.double() @ R.T + t
    expected = (cam @ K.T)[:, :2] / cam[:, 2:]  # the posed joints projected by hand with the same camera
    assert float((pixels[0].double() - expected).norm(dim=1).max()) <= 1.0
    shown = visible[0, BODY:]
    assert shown[[0, 21]].all() and shown.sum() >= 20  # both wrists; fingers partly hide each other edge-on
    for (x, y), seen in zip(pixels[0, BODY:].tolist(), shown.tolist()):
        if seen:  # every visible hand keypoint's pixel is covered by a keypoint disc
            assert tuple(images[0][int(y), int(x)]) == H.KEYPOINT_COLOUR


def test_left_and_right_hands_are_not_swapped(t_pose):
    cameras = eval_ring(4, CameraConfig(), SIZE, SIZE)
    _, pixels, visible, _ = hand_condition(t_pose, cameras)
    front, back = 0, 2
    left, right = pixels[:, BODY:BODY + 21, 0], pixels[:, BODY + 21:, 0]  # x of each hand's keypoints
    # front: the person's left hand on the image's right; from behind, on its left
    assert float(left[front].min()) > float(right[front].max())
    assert float(left[back].max()) < float(right[back].min())
    wrist = S.KEYPOINT_NAMES.index("left_wrist")
    assert torch.allclose(pixels[:, BODY], pixels[:, wrist])  # the hand's wrist is the body's
    assert visible[back, [BODY, BODY + 21]].all()  # hands held out show from behind too


def test_hidden_hand_is_dropped_in_a_side_view():
    body = pose_body(load_pose("arms-down"))
    cameras = eval_ring(4, CameraConfig(), SIZE, SIZE)
    _, _, visible, images = hand_condition(body, cameras)
    left_side = 1  # the camera on the body's left: the right hand is behind the body
    assert visible[left_side, BODY:BODY + 21].sum() >= 10 and not visible[left_side, BODY + 21:].any()


def test_hand_drawing_sizes_and_colours():
    canvas = np.zeros((SIZE, SIZE, 3), np.uint8)
    pixels = np.zeros((42, 2))
    pixels[:21] = [[100 + 15 * (k % 5), 100 + 15 * (k // 5)] for k in range(21)]
    visible = np.zeros(42, bool)
    visible[[0, 1]] = True  # one edge: wrist to thumb base
    H.draw_hands(canvas, pixels, visible)
    dots = (canvas == H.KEYPOINT_COLOUR).all(-1)
    ys, xs = np.nonzero(dots[:, :110])
    assert abs(xs.mean() + 0.5 - 100) < 0.5 and abs(ys.mean() + 0.5 - 100) < 0.5
    assert 40 <= len(xs) <= 60  # a disc of radius 4 px (pi r^2 = 50) at 512 px
    assert tuple(canvas[100, 107]) == H.EDGE_COLOURS[0] == (255, 0, 0)  # the first edge: hue 0
    assert canvas[103:, 107].sum() == 0  # the line is 2 px wide


def test_hand_drawing_matches_controlnet_aux(monkeypatch):
    util, keypoint_type = reference_util(monkeypatch)
    pytest.importorskip("matplotlib")
    for pose, cam in (("t-pose", 0), ("wave", 0), ("arms-up", 2)):
        body = pose_body(load_pose(pose))
        cameras = eval_ring(4, CameraConfig(), SIZE, SIZE)[cam]
        _, pixels, visible, _ = hand_condition(body, cameras)
        ours = H.draw_hands(np.zeros((SIZE, SIZE, 3), np.uint8), pixels[0, BODY:].numpy(), visible[0, BODY:].numpy())
        theirs = np.zeros((SIZE, SIZE, 3), np.uint8)
        for hand in (slice(0, 21), slice(21, 42)):  # hidden keypoints at (0, 0), which it skips
            points = [keypoint_type(float(x) / SIZE, float(y) / SIZE) if v else keypoint_type(0.0, 0.0)
                      for (x, y), v in zip(pixels[0, BODY:][hand].tolist(), visible[0, BODY:][hand].tolist())]
            theirs = util.draw_handpose(theirs, points)
        a, b = ours.any(-1), theirs.any(-1)
        assert a.sum() > 100 and (a & b).sum() / (a | b).sum() > 0.7, pose
        assert (ours == theirs).all(-1)[a & b].mean() > 0.8, pose


def test_hands_are_drawn_for_real_controlnets_by_default():
    """`control.hands` unset: hands for a ControlNet loaded from a folder or the hub, none for the toy one (trained
    on bodies only); set, it wins. The skeleton images then carry the hand keypoints' discs."""
    from types import SimpleNamespace

    from lucidkit.avatar import AvatarConfig, AvatarTask

    cfg = AvatarConfig(prompt="a red person")
    task = AvatarTask(cfg)
    task.check_input()
    for kind, expected in (("toy", False), ("folder", True), ("hub", True)):
        task.resolve_hands(SimpleNamespace(source={"controlnet": {"kind": kind}}))
        assert task.hands is expected, kind
    cams = eval_ring(1, CameraConfig(), SIZE, SIZE)
    with_hands = task.skeletons(cams)[0].numpy()
    cfg.control.hands = False
    task.resolve_hands(SimpleNamespace(source={"controlnet": {"kind": "folder"}}))
    assert task.hands is False
    without = task.skeletons(cams)[0].numpy()
    blue = lambda image: int((np.round(image * 255) == H.KEYPOINT_COLOUR).all(-1).sum())  # noqa: E731
    assert blue(with_hands) > blue(without) + 100  # (the body's left ankle disc is that blue too)


def test_hands_flag_is_offered():
    from click.testing import CliRunner

    from lucidkit.commands.cli import cli

    result = CliRunner().invoke(cli, ["avatar", "--help"])
    assert result.exit_code == 0 and "--hands / --no-hands" in result.output and "face keypoints" in result.output


@pytest.mark.gpu
def test_skeleton_on_cuda_matches_cpu(t_pose):
    """The avatar casts its visibility rays on the cameras' device: the same keypoints show on CUDA as on a CPU."""
    cameras = eval_ring(8, CameraConfig(), SIZE, SIZE)
    kp = S.openpose_keypoints(t_pose.world_joints(), hands=True)
    ids = S.keypoint_joint_ids(hands=True)
    args = (t_pose.world_vertices(), t_pose.faces, cameras, t_pose.vertex_joint, ids)
    pixels, visible = S.visibility(kp, *args)
    on_gpu = [v.cuda() if torch.is_tensor(v) else v for v in args[:2]]
    pixels_gpu, visible_gpu = S.visibility(kp.cuda(), *on_gpu, cameras.to("cuda"), t_pose.vertex_joint.cuda(), ids)
    assert torch.allclose(pixels, pixels_gpu, atol=1e-3) and (visible == visible_gpu).float().mean() > 0.99
