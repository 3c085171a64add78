"""OpenPose hand keypoints of an SMPL-X body (21 per hand) and their drawing, beside the 18 body keypoints.

OpenPose's hand (as OpenPose ControlNets saw it: controlnet_aux's `draw_handpose`) has 21 keypoints: 0 the wrist,
then four per finger from the palm out (thumb 1-4, index 5-8, middle 9-12, ring 13-16, pinky 17-20), and 20 edges
(wrist to each finger's base, then along each finger), edge i coloured by the HSV hue i / 20 (full saturation and
value), keypoints drawn over them as discs of (0, 0, 255) — blue on the RGB canvas the ControlNet reads.
At 512 px the lines are 2 px wide and the discs have a 4 px radius; both scale with the image size.

From smplx's output joints: the wrist and the three joints of each finger are skeleton joints (SMPL-X names
`left_thumb1..3`, `left_index1..3`, ...; thumb1 is the thumb's base, as OpenPose's keypoint 1); the fingertips are
smplx's vertex-selected extra joints, after the five face and six foot points: ids 66-70 for the left hand's thumb,
index, middle, ring and pinky tips and 71-75 for the right hand's (`smplx.vertex_joint_selector`).
Sides are the person's, as for the body keypoints.

Face keypoints are not drawn: smplx gives the 51 inner face landmarks (ids 76-126) only as the model file's
landmark embedding places them, and the built-in body's 51 landmarks are a placeholder grid on the face, not
brows, eyes, nose and mouth; OpenPose's other 17 face points (the jaw contour) need SMPL-X's dynamic contour
embedding (`use_face_contour`), which the built-in body does not have.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from lucidkit.body.procedural import J

OPENPOSE_FINGERS = ("thumb", "index", "middle", "ring", "pinky")  # OpenPose's order (smplx's tips use it too)
_FIRST_TIP = 55 + 5 + 6  # smplx's extra joints: 5 face points, 6 foot points, then the 10 fingertips


def hand_joint_ids(side: str) -> tuple[int, ...]:
    """The 21 smplx output joint ids of the `side` ("left" / "right") hand in OpenPose's order."""
    tips = _FIRST_TIP + (0 if side == "left" else 5)
    ids = [J[f"{side}_wrist"]]
    for f, finger in enumerate(OPENPOSE_FINGERS):
        ids += [J[f"{side}_{finger}{k}"] for k in (1, 2, 3)] + [tips + f]
    return tuple(ids)


HAND_JOINT_IDS = hand_joint_ids("left") + hand_joint_ids("right")  # 42: left hand, then right hand
HAND_EDGES = tuple(edge for f in range(5) for edge in [(0, 4 * f + 1)] + [(4 * f + k, 4 * f + k + 1) for k in (1, 2, 3)])
EDGE_COLOURS = tuple(tuple(round(255 * c) for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0))
                     for i in range(len(HAND_EDGES)))
KEYPOINT_COLOUR = (0, 0, 255)
LINE_WIDTH_512 = 2.0  # OpenPose's hand line width and keypoint radius at 512 px
DOT_RADIUS_512 = 4.0


def _capsule(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float, colour) -> None:
    """Paint the pixels whose centres lie within `radius` of the segment a-b (a disc when a == b)."""
    height, width = canvas.shape[:2]
    lo, hi = np.minimum(a, b) - radius, np.maximum(a, b) + radius
    x0, x1 = max(0, int(math.floor(lo[0]))), min(width, int(math.ceil(hi[0])) + 1)
    y0, y1 = max(0, int(math.floor(lo[1]))), min(height, int(math.ceil(hi[1])) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
    d = b - a
    along = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / max(float(d @ d), 1e-12), 0.0, 1.0)
    distance2 = (xs - a[0] - along * d[0]) ** 2 + (ys - a[1] - along * d[1]) ** 2
    canvas[y0:y1, x0:x1][distance2 <= radius**2] = colour


def draw_hands(canvas: np.ndarray, pixels: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Draw both hands' keypoints `pixels` [42, 2] (x, y; left hand first) where `visible` [42] onto `canvas`
    [H, W, 3] uint8 (in place; returned): each hand's edges, then its keypoints."""
    height, width = canvas.shape[:2]
    scale = min(height, width) / 512.0
    line_radius, dot_radius = max(0.5, 0.5 * LINE_WIDTH_512 * scale), max(1.0, DOT_RADIUS_512 * scale)
    pixels = np.asarray(pixels, np.float64)
    for hand in (slice(0, 21), slice(21, 42)):
        points, seen = pixels[hand], np.asarray(visible)[hand]
        for (i, k), colour in zip(HAND_EDGES, EDGE_COLOURS):
            if seen[i] and seen[k]:
                _capsule(canvas, points[i], points[k], line_radius, colour)
        for point, shown in zip(points, seen):
            if shown:
                _capsule(canvas, point, point, dot_radius, KEYPOINT_COLOUR)
    return canvas
