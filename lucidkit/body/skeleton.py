"""The OpenPose skeleton condition: SMPL-X joints -> 18 body keypoints -> pixels -> visibility -> an image.

Keypoints (OpenPose COCO-18 order) come from smplx's output joints `BODY_JOINT_IDS`, the mapping DreamWaltz-G and
HumanGaussian use: nose, eyes and ears are smplx's vertex-selected extra joints (55-59), the rest are skeleton
joints. Names say the *person's* side: in a front view the person's right shoulder is on the image's left.

Projection uses lucidkit cameras (`CameraBatch`: world-to-camera OpenCV `viewmats`, pixel `Ks`), so points must
be in lucidkit's world (z up; see `pose.to_world`). A keypoint is dropped when it is behind the camera, outside
the image, or hidden by the body: a ray from the camera centre to the keypoint is cast against the posed mesh
(Moller-Trumbore, all triangles at once) and the nearest hit must not lie more than a slack in front of the
keypoint. The slack is 1.5x the keypoint's mean distance to its `NEIGHBOURS` nearest mesh vertices (about the
radius of the limb around it: joints sit inside their limb, whose own near surface must not hide them) plus
`SURFACE_EPS`; face points lie on the surface, so their slack is small. Given the mesh's skinning (which joint
moves each vertex), a joint is also seen when the first surface on its ray is its own flesh (moved by the joint,
its parent or a child): a hip deep inside the pelvis shows from the front, as OpenPose finds it. OpenPose's neck
is the shoulders' midpoint, so it is shown whenever a shoulder is. So face points vanish in back views, and a limb
behind the torso is hidden.

Drawing follows the OpenPose convention ControlNets were trained on (controlnet_aux's `draw_bodypose`): 17
limbs in `LIMBS` order as filled ellipses of 0.6x their colour, then 18 keypoint discs in full colour, on black;
the stick width and disc radius are 4 px at 512 px and scale with the image size. Our own numpy drawing,
evaluated at pixel centres (x + 0.5, y + 0.5), so a keypoint's disc is centred on its projected position.

With `hands`, the 21 OpenPose keypoints of each hand (`hands.py`) follow the 18 body keypoints: they get the same
projection and visibility (finger joints are seen through their own flesh like body joints; fingertips are surface
points like the face's) and are drawn over the body. Face keypoints are not drawn (see `hands.py`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from lucidkit.body.hands import HAND_JOINT_IDS, draw_hands
from lucidkit.body.procedural import PARENTS
from lucidkit.cameras import CameraBatch

BODY_JOINT_IDS = (55, 12, 17, 19, 21, 16, 18, 20, 2, 5, 8, 1, 4, 7, 56, 57, 58, 59)
KEYPOINT_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye",
    "right_ear", "left_ear",
)
# Limbs as keypoint pairs (0-based), in OpenPose's drawing order; limb i has colour COLOURS[i].
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
           (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
           (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
LIMB_SHADE = 0.6  # limbs are drawn at 0.6x their colour, keypoints at full colour
STICK_WIDTH_512 = 4.0  # OpenPose's stick width and keypoint radius at 512 px
SURFACE_EPS = 0.012  # depth slack for points on the surface, in the posed body's normalised units
NEIGHBOURS = 32  # the local body radius at a keypoint: its mean distance to this many nearest vertices
NEAR = 1e-3  # keypoints closer than this to the camera plane (or behind it) are dropped


def keypoint_joint_ids(hands: bool = False) -> tuple[int, ...]:
    """The smplx output joint of each keypoint: the 18 body keypoints, then with `hands` the 2 x 21 hand ones."""
    return BODY_JOINT_IDS + (HAND_JOINT_IDS if hands else ())


def openpose_keypoints(joints: torch.Tensor, hands: bool = False) -> torch.Tensor:
    """[18, 3] OpenPose body keypoints (with `hands` [60, 3]: then left and right hand) from smplx's output joints
    [J >= 76, 3] (any frame)."""
    return joints[list(keypoint_joint_ids(hands))]


def project(points: torch.Tensor, cameras: CameraBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels [C, K, 2] (x right, y down, continuous: pixel i spans [i, i + 1)) and camera depths [C, K] of
    world points [K, 3]."""
    p = points.to(cameras.viewmats)
    cam = p @ cameras.viewmats[:, :3, :3].transpose(1, 2) + cameras.viewmats[:, None, :3, 3]  # [C, K, 3]
    depth = cam[..., 2]  # [C, K]
    uvw = cam @ cameras.Ks.transpose(1, 2)  # [C, K, 3]
    pixels = uvw[..., :2] / depth.clamp_min(1e-9)[..., None]  # [C, K, 2]
    return pixels, depth


def first_hits(origin: torch.Tensor, targets: torch.Tensor, triangles: torch.Tensor) -> tuple[Tensor, Tensor]:
    """Distance [K] from `origin` [3] along each ray toward `targets` [K, 3] to the nearest triangle hit
    (`triangles` [F, 3, 3]; inf where a ray hits nothing) and that triangle's index [K]. Moller-Trumbore, all
    pairs at once."""
    dirs = torch.nn.functional.normalize(targets - origin, dim=1)  # [K, 3]
    v0 = triangles[:, 0]  # [F, 3]
    e1, e2 = triangles[:, 1] - v0, triangles[:, 2] - v0  # [F, 3]
    pvec = torch.linalg.cross(dirs[:, None, :].expand(-1, len(v0), -1), e2[None].expand(len(dirs), -1, -1))  # [K, F, 3]
    det = (e1[None] * pvec).sum(-1)  # [K, F]
    ok = det.abs() > 1e-12
    inv = 1.0 / torch.where(ok, det, torch.ones_like(det))
    tvec = origin - v0  # [F, 3]
    u = (tvec[None] * pvec).sum(-1) * inv  # [K, F]
    qvec = torch.linalg.cross(tvec, e1)  # [F, 3]
    v = (dirs @ qvec.T) * inv  # [K, F]
    t = (e2 * qvec).sum(-1)[None] * inv  # [K, F] distance along the unit ray
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-6)
    return torch.where(hit, t, torch.full_like(t, math.inf)).min(1)


def visibility(
    keypoints: torch.Tensor,  # [K, 3] world
    vertices: torch.Tensor,  # [V, 3] world, the posed mesh
    faces: torch.Tensor,  # [F, 3] long
    cameras: CameraBatch,
    vertex_joint: torch.Tensor | None = None,  # [V] long, the joint that moves each vertex most
    joint_ids: tuple[int, ...] = BODY_JOINT_IDS,  # [K] the smplx joint of each keypoint (`keypoint_joint_ids`)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels [C, K, 2] and a visibility mask [C, K]: in front of the camera, inside the image and not hidden by
    the body (see the module doc). With `vertex_joint`, a joint keypoint whose first hit is its own flesh (a
    triangle moved by the joint, its parent or a child) is visible however deep inside it sits."""
    device = vertices.device  # runs where the mesh is (a GPU makes the ray casts of a large pool fast)
    keypoints, vertices, cameras = keypoints.float().to(device), vertices.float(), cameras.to(device)
    pixels, depth = project(keypoints, cameras)
    near = torch.cdist(keypoints, vertices).topk(min(NEIGHBOURS, len(vertices)), dim=1, largest=False).values
    slack = 1.5 * near.mean(1) + SURFACE_EPS  # [K]: about 1.5x the radius of the limb around the keypoint
    triangles = vertices[faces]  # [F, 3, 3]
    centres = cameras.camera_centers().float()  # [C, 3]
    inside = (pixels[..., 0] >= 0) & (pixels[..., 0] < cameras.width) & (pixels[..., 1] >= 0) \
        & (pixels[..., 1] < cameras.height)
    visible = (depth > NEAR) & inside  # [C, K]
    for c in range(len(cameras)):
        distance = (keypoints - centres[c]).norm(dim=1)  # [K]
        hit, triangle = first_hits(centres[c], keypoints, triangles)  # [K], [K]
        seen = hit >= distance - slack
        if vertex_joint is not None:
            owner = vertex_joint.to(device)[faces[triangle.clamp_max(len(faces) - 1), 0]]  # [K]
            seen |= torch.isfinite(hit) & own_flesh(owner, joint_ids)
        visible[c] &= seen
    # OpenPose's COCO-18 neck is the midpoint of the shoulders, found whenever a shoulder is; the shoulder tops
    # often hide the neck joint's own base from the side, so a visible shoulder (in the image) shows the neck.
    if tuple(joint_ids[:len(BODY_JOINT_IDS)]) == BODY_JOINT_IDS:
        neck = KEYPOINT_NAMES.index("neck")
        shoulders = [KEYPOINT_NAMES.index(f"{s}_shoulder") for s in ("left", "right")]
        visible[:, neck] |= (depth[:, neck] > NEAR) & inside[:, neck] & visible[:, shoulders].any(1)
    return pixels.cpu(), visible.cpu()


@lru_cache(maxsize=8)
def own_flesh_table(joint_ids: tuple[int, ...] = BODY_JOINT_IDS, device: torch.device | str = "cpu") -> torch.Tensor:
    """[K, 55] bool on `device` (built once per keypoint set and device): joint j is keypoint k's joint, its parent
    or a child. All false for the vertex-selected points (ids >= 55: face points and fingertips lie on the surface:
    the back of the head must hide the face)."""
    table = torch.zeros(len(joint_ids), len(PARENTS), dtype=torch.bool)
    for k, joint in enumerate(joint_ids):
        if joint < len(PARENTS):
            near = {joint, PARENTS[joint]} | {c for c, p in enumerate(PARENTS) if p == joint}
            table[k, sorted(j for j in near if j >= 0)] = True
    return table.to(device)


def own_flesh(owner: torch.Tensor, joint_ids: tuple[int, ...] = BODY_JOINT_IDS) -> torch.Tensor:
    """[K] bool: is joint `owner[k]` (SMPL-X id, [K] long) keypoint k's own joint, its parent or a child?"""
    return own_flesh_table(tuple(joint_ids), owner.device)[torch.arange(len(owner), device=owner.device), owner]


def stick_width(height: int, width: int) -> float:
    """OpenPose's 4 px stick width at 512 px, scaled with the image size (at least 1 px)."""
    return max(1.0, STICK_WIDTH_512 * min(height, width) / 512.0)


def draw_openpose(pixels: np.ndarray, visible: np.ndarray, height: int, width: int) -> np.ndarray:
    """The OpenPose image [H, W, 3] uint8 of keypoints `pixels` [18, 2] (x, y) where `visible` [18]; given 60
    keypoints (`keypoint_joint_ids(hands=True)`), the two hands are drawn over the body."""
    canvas = np.zeros((height, width, 3), np.uint8)
    stick = stick_width(height, width)
    pixels = np.asarray(pixels, np.float64)

    def window(centre: np.ndarray, reach: float):
        """Pixel centres (xs, ys) of the box of half-size `reach` around `centre`, and the canvas slices."""
        x0, x1 = max(0, int(centre[0] - reach)), min(width, int(centre[0] + reach) + 2)
        y0, y1 = max(0, int(centre[1] - reach)), min(height, int(centre[1] + reach) + 2)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
        return xs, ys, (slice(y0, y1), slice(x0, x1))

    for (a, b), colour in zip(LIMBS, COLOURS):
        if not (visible[a] and visible[b]):
            continue
        centre = 0.5 * (pixels[a] + pixels[b])
        half_length = max(0.5 * float(np.linalg.norm(pixels[a] - pixels[b])), 0.5)
        angle = math.atan2(pixels[a][1] - pixels[b][1], pixels[a][0] - pixels[b][0])
        xs, ys, box = window(centre, half_length + stick)
        # Pixel centres in the limb's frame: along (x) and across (y) the segment.
        dx, dy = xs - centre[0], ys - centre[1]
        along = dx * math.cos(angle) + dy * math.sin(angle)
        across = -dx * math.sin(angle) + dy * math.cos(angle)
        canvas[box][(along / half_length) ** 2 + (across / stick) ** 2 <= 1.0] = [int(c * LIMB_SHADE) for c in colour]
    for k in range(len(KEYPOINT_NAMES)):
        if visible[k]:
            xs, ys, box = window(pixels[k], stick)
            canvas[box][(xs - pixels[k][0]) ** 2 + (ys - pixels[k][1]) ** 2 <= stick**2] = COLOURS[k]
    if len(pixels) > len(KEYPOINT_NAMES):
        draw_hands(canvas, pixels[len(KEYPOINT_NAMES):], visible[len(KEYPOINT_NAMES):])
    return canvas


def skeleton_images(
    joints_world: torch.Tensor,  # [J, 3] smplx output joints, world frame
    vertices_world: torch.Tensor,  # [V, 3]
    faces: torch.Tensor,  # [F, 3]
    cameras: CameraBatch,
    vertex_joint: torch.Tensor | None = None,  # [V] long (PosedBody.vertex_joint)
    hands: bool = False,
) -> torch.Tensor:
    """[C, H, W, 3] float in [0, 1] on the cameras' device: the OpenPose condition image of the posed body for every
    camera (with `hands`, both hands' 21 keypoints too). Drawn on the host; the uint8 images move to the device
    before the conversion (a quarter of the bytes, and no float pass over 4 x 512² x 3 values on the host)."""
    keypoints = openpose_keypoints(joints_world, hands)
    pixels, visible = visibility(keypoints, vertices_world, faces, cameras, vertex_joint, keypoint_joint_ids(hands))
    images = [draw_openpose(pixels[c].numpy(), visible[c].numpy(), cameras.height, cameras.width)
              for c in range(len(cameras))]
    return torch.from_numpy(np.stack(images)).to(cameras.viewmats.device).float() / 255.0
