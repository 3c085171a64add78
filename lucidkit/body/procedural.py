"""Our own procedural human body, in the SMPL-X file layout, so that it loads through the real `smplx` package.

The body is a union of closed tubes (torso, neck, head, arms, hands, fingers, legs, feet; nose and ears) built
around a skeleton with SMPL-X's 55 joints, joint names and kinematic tree. Nothing of the licensed SMPL-X model
is used: the geometry, skinning weights, joint regressor and shape space are all made here from a few numbers.

SMPL-X frame (the file's frame): metres, y up, the body faces +z, its left side is +x. The rest pose is a T-pose
(arms horizontal, palms down), feet at y = -0.95, pelvis at the origin, height about 1.75 m.

The file (`body_arrays()` -> `write_body()`), with the keys smplx 0.1.28 reads (V = 10475, J = 55):
    v_template [V, 3]            rest vertices
    f [F, 3]                     triangles (outward winding)
    J_regressor [J, V]           joints = J_regressor @ vertices: each joint is the centre of a ring of its tube
    kintree_table [2, J]         parents (row 0, root -1) and joint ids (row 1)
    weights [V, J]               linear-blend-skinning weights (soft-min of the distance to the part's bones)
    shapedirs [V, 3, 400]        0-9: body shape (betas), 300-309: expression; the rest zero (SMPL-X's 300 + 100)
    posedirs [V, 3, 486]         zero: no pose correctives
    hands_componentsl/r [45, 45] identity (hand PCA = axis-angle), hands_meanl/r [45] zero (flat hands)
    lmk_faces_idx [51], lmk_bary_coords [51, 3]   face landmarks on the front of the head
The vertices smplx selects as extra joints (nose, eyes, ears, toes, heels, fingertips; `smplx.vertex_ids`) are
placed at those points of our surface by permuting the vertex order.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

N_VERTICES = 10475
N_JOINTS = 55
N_SHAPE, N_EXPR = 10, 10  # non-zero shape and expression components
SHAPE_SPACE, EXPR_SPACE = 300, 100  # SMPL-X's sizes; smplx warns when a file has fewer
N_LANDMARKS = 51

# SMPL-X's 55 joints (names as smplx.joint_names.JOINT_NAMES) and their parents.
_FINGERS = ("index", "middle", "pinky", "ring", "thumb")
JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw", "left_eye_smplhf",
    "right_eye_smplhf",
) + tuple(f"{side}_{finger}{k}" for side in ("left", "right") for finger in _FINGERS for k in (1, 2, 3))
# Finger joint k (0-2) of finger f of hand s hangs from the wrist (k = 0) or from the previous finger joint.
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15) + tuple(
    wrist if k == 0 else 25 + 15 * s + 3 * f + k - 1
    for s, wrist in ((0, 20), (1, 21)) for f in range(5) for k in range(3)
)
J = {name: i for i, name in enumerate(JOINT_NAMES)}

# Where smplx takes its vertex-selected extra joints (smplx.vertex_ids.vertex_ids["smplx"], fixed by SMPL-X).
EXTRA_VERTEX_IDS = {
    "nose": 9120, "reye": 9929, "leye": 9448, "rear": 616, "lear": 6,
    "rthumb": 8079, "rindex": 7669, "rmiddle": 7794, "rring": 7905, "rpinky": 8022,
    "lthumb": 5361, "lindex": 4933, "lmiddle": 5058, "lring": 5169, "lpinky": 5286,
    "LBigToe": 5770, "LSmallToe": 5780, "LHeel": 8846, "RBigToe": 8463, "RSmallToe": 8474, "RHeel": 8635,
}


def rest_joints() -> np.ndarray:
    """[55, 3] joint positions of the rest T-pose (SMPL-X frame, metres); right = left mirrored in x."""
    p = np.zeros((N_JOINTS, 3))
    left = {
        "left_hip": (0.09, -0.08, 0.0), "left_knee": (0.10, -0.50, 0.01), "left_ankle": (0.10, -0.88, -0.03),
        "left_foot": (0.11, -0.935, 0.09), "left_collar": (0.07, 0.40, -0.02), "left_shoulder": (0.18, 0.42, -0.03),
        "left_elbow": (0.45, 0.42, -0.04), "left_wrist": (0.70, 0.42, -0.03), "left_eye_smplhf": (0.032, 0.685, 0.07),
    }
    # Finger bases across the palm (z: index at the front, pinky at the back), thumb forward and out.
    bases = {"index": (0.795, 0.42, 0.0), "middle": (0.80, 0.42, -0.022), "ring": (0.79, 0.42, -0.042),
             "pinky": (0.78, 0.42, -0.06), "thumb": (0.725, 0.41, 0.02)}
    dirs = {"index": (1, 0, 0.05), "middle": (1, 0, 0), "ring": (1, 0, -0.05), "pinky": (1, 0, -0.1),
            "thumb": (0.7, -0.05, 0.7)}
    lengths = {"index": (0.04, 0.025, 0.022), "middle": (0.045, 0.028, 0.023), "ring": (0.042, 0.026, 0.022),
               "pinky": (0.032, 0.02, 0.018), "thumb": (0.035, 0.03, 0.025)}
    for finger, base in bases.items():
        d = np.asarray(dirs[finger], float) / np.linalg.norm(dirs[finger])
        point = np.asarray(base, float)
        for k in range(3):
            left[f"left_{finger}{k + 1}"] = tuple(point)
            point = point + lengths[finger][k] * d
    centre = {"pelvis": (0, 0, 0), "spine1": (0, 0.10, -0.01), "spine2": (0, 0.23, -0.01), "spine3": (0, 0.31, 0.0),
              "neck": (0, 0.48, -0.02), "head": (0, 0.56, 0.0), "jaw": (0, 0.60, 0.02)}
    for name, xyz in centre.items():
        p[J[name]] = xyz
    for name, xyz in left.items():
        p[J[name]] = xyz
        p[J["right" + name[4:]]] = (-xyz[0], xyz[1], xyz[2])
    return p


def fingertip(joints: np.ndarray, side: str, finger: str) -> np.ndarray:
    """The tip of a finger: its last joint plus the last segment's direction times 0.8 of its length."""
    j2, j3 = joints[J[f"{side}_{finger}2"]], joints[J[f"{side}_{finger}3"]]
    return j3 + 0.8 * (j3 - j2)


@dataclass
class Tube:
    """A closed tube around a polyline of centres, with elliptical rings (radii `ra` along `ref`, `rb` across)
    and rounded caps of lengths `caps` beyond both ends. `bones` are the joints whose segments may skin it."""

    name: str
    nodes: list  # [m, 3] polyline centres; rings sit exactly on every node
    radii: list  # [m, 2] (ra, rb) at each node, linear in between
    ref: tuple  # reference direction for the ring's first axis
    bones: list  # joint ids whose bone segments skin this part
    segments: int = 16  # vertices per ring
    spacing: float = 0.02  # ring spacing along the axis, metres
    caps: tuple = (0.02, 0.02)
    node_joints: dict = field(default_factory=dict)  # node index -> joint id regressed from that ring
    softness: float = 0.015  # skinning blend distance, metres


def _parts(p: np.ndarray) -> list[Tube]:
    """Every part of the body, around the rest joints `p` [55, 3]."""
    parts = [
        Tube("torso", [(0, -0.10, 0.0), p[0], p[3], p[6], p[9], (0, 0.43, -0.02)],
             [(0.16, 0.11), (0.17, 0.115), (0.145, 0.10), (0.15, 0.105), (0.17, 0.11), (0.13, 0.09)],
             (1, 0, 0), [0, 3, 6, 9, 1, 2, 13, 14], segments=40, spacing=0.017, caps=(0.07, 0.035),
             node_joints={1: 0, 2: 3, 3: 6, 4: 9}, softness=0.03),
        Tube("neck", [(0, 0.42, -0.025), p[12], p[15]], [(0.05, 0.05), (0.048, 0.048), (0.05, 0.05)],
             (1, 0, 0), [12, 9, 15], segments=16, spacing=0.02, caps=(0.0, 0.0), node_joints={1: 12, 2: 15}),
        Tube("head", [(0, 0.58, 0.01), (0, p[22][1], 0.01), (0, 0.69, 0.01), (0, 0.74, 0.005)],
             [(0.07, 0.08), (0.078, 0.092), (0.085, 0.10), (0.082, 0.097)], (1, 0, 0), [15, 22],
             segments=36, spacing=0.012, caps=(0.02, 0.075), node_joints={1: 22}, softness=0.01),
        Tube("nose", [(0, 0.67, 0.09), (0, 0.652, 0.128)], [(0.014, 0.012), (0.006, 0.005)], (1, 0, 0), [15],
             segments=8, spacing=0.01, caps=(0.0, 0.006)),
    ]
    for s, side in ((1, "left"), (-1, "right")):
        j = lambda name: J[f"{side}_{name}"]  # noqa: E731
        tip = lambda finger: fingertip(p, side, finger)  # noqa: E731
        parts += [
            Tube(f"{side}_ear", [(0.083 * s, 0.685, 0.0), (0.095 * s, 0.675, -0.005)], [(0.025, 0.012)] * 2,
                 (0, 1, 0), [15], segments=10, spacing=0.01, caps=(0.005, 0.006)),
            Tube(f"{side}_arm", [p[j("collar")], p[j("shoulder")], p[j("elbow")], p[j("wrist")]],
                 [(0.05, 0.05), (0.055, 0.055), (0.042, 0.042), (0.032, 0.028)], (0, 1, 0),
                 [j("collar"), j("shoulder"), j("elbow"), j("wrist"), 9], segments=20, spacing=0.02,
                 caps=(0.02, 0.0), node_joints={0: j("collar"), 1: j("shoulder"), 2: j("elbow"), 3: j("wrist")}),
            Tube(f"{side}_palm", [p[j("wrist")], (p[j("middle1")] + p[j("wrist")]) / 2, p[j("middle1")]],
                 [(0.03, 0.015), (0.042, 0.014), (0.042, 0.012)], (0, 0, 1),
                 [j("wrist")] + [j(f + "1") for f in _FINGERS], segments=16, spacing=0.012, caps=(0.01, 0.01)),
            Tube(f"{side}_leg", [p[j("hip")], p[j("knee")], p[j("ankle")]],
                 [(0.085, 0.085), (0.052, 0.055), (0.038, 0.04)], (1, 0, 0), [j("hip"), j("knee"), j("ankle"), 0],
                 segments=24, spacing=0.02, caps=(0.06, 0.02), node_joints={0: j("hip"), 1: j("knee"), 2: j("ankle")},
                 softness=0.02),
            Tube(f"{side}_foot", [(0.10 * s, -0.92, -0.06), (0.105 * s, -0.925, 0.02), p[j("foot")],
                                  (0.115 * s, -0.935, 0.15)],
                 [(0.035, 0.03), (0.042, 0.035), (0.045, 0.022), (0.04, 0.016)], (1, 0, 0), [j("ankle"), j("foot")],
                 segments=16, spacing=0.02, caps=(0.02, 0.015), node_joints={2: j("foot")}),
        ]
        for finger in _FINGERS:
            ids = [j(f"{finger}{k}") for k in (1, 2, 3)]
            width = 0.011 if finger != "thumb" else 0.013
            parts.append(Tube(f"{side}_{finger}", [p[i] for i in ids] + [tip(finger)],
                              [(width, width * 0.85)] * 3 + [(width * 0.8, width * 0.7)], (0, 1, 0), ids,
                              segments=8, spacing=0.012, caps=(0.004, 0.006),
                              node_joints={0: ids[0], 1: ids[1], 2: ids[2]}, softness=0.004))
    return parts


def _bone_segments(p: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """joint -> (start, end) of the bone it rotates: to its main child, or to an end point for leaves."""
    main_child = {0: 3, 3: 6, 6: 9, 9: 12, 12: 15}
    for side in ("left", "right"):
        main_child.update({J[f"{side}_hip"]: J[f"{side}_knee"], J[f"{side}_knee"]: J[f"{side}_ankle"],
                           J[f"{side}_ankle"]: J[f"{side}_foot"], J[f"{side}_collar"]: J[f"{side}_shoulder"],
                           J[f"{side}_shoulder"]: J[f"{side}_elbow"], J[f"{side}_elbow"]: J[f"{side}_wrist"],
                           J[f"{side}_wrist"]: J[f"{side}_middle1"]})
        for finger in _FINGERS:
            main_child[J[f"{side}_{finger}1"]] = J[f"{side}_{finger}2"]
            main_child[J[f"{side}_{finger}2"]] = J[f"{side}_{finger}3"]
    bones = {j: (p[j], p[c]) for j, c in main_child.items()}
    bones[15] = (p[15], np.array([0, 0.80, 0.0]))  # head: up to the crown
    bones[22] = (p[22], np.array([0, 0.575, 0.09]))  # jaw: forward-down to the chin
    for side, s in (("left", 1), ("right", -1)):
        bones[J[f"{side}_foot"]] = (p[J[f"{side}_foot"]], np.array([0.115 * s, -0.935, 0.16]))
        for finger in _FINGERS:
            j3 = J[f"{side}_{finger}3"]
            bones[j3] = (p[j3], fingertip(p, side, finger))
    return bones


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[n] distance from `points` [n, 3] to the segment ab."""
    ab = b - a
    t = np.clip((points - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


def _build_tube(tube: Tube, extra_rings: int = 0):
    """Vertices [n, 3], faces [f, 3], ring centres [n, 3] (the axis point of each vertex's ring) and, per node
    with a joint, the vertex ids of that node's ring. `extra_rings` adds rings to the longest segment."""
    nodes = np.asarray(tube.nodes, float)
    radii = np.asarray(tube.radii, float)
    seg_len = np.linalg.norm(np.diff(nodes, axis=0), axis=1)
    counts = np.maximum(1, np.round(seg_len / tube.spacing)).astype(int)
    counts[int(np.argmax(seg_len))] += extra_rings
    # Rings: (centre, radii, tangent, node index or -1); caps first/last, rings exactly on the nodes.
    rings = []
    tangents = np.diff(nodes, axis=0) / seg_len[:, None]
    node_tangent = np.vstack([tangents[:1], (tangents[:-1] + tangents[1:]) / 2, tangents[-1:]])
    n_cap = [max(0, int(math.ceil(c / tube.spacing))) + 1 if c > 0 else 0 for c in tube.caps]
    for k in range(n_cap[0], 0, -1):  # start cap: ellipsoidal profile behind node 0
        f = k / (n_cap[0] + 0.35)
        rings.append((nodes[0] - tangents[0] * tube.caps[0] * f, radii[0] * math.sqrt(1 - f * f), tangents[0], -1))
    for i in range(len(nodes) - 1):
        for k in range(counts[i]):
            f = k / counts[i]
            tangent = node_tangent[i] if k == 0 else tangents[i]
            rings.append((nodes[i] + f * (nodes[i + 1] - nodes[i]), (1 - f) * radii[i] + f * radii[i + 1], tangent,
                          i if k == 0 else -1))
    rings.append((nodes[-1], radii[-1], node_tangent[-1], len(nodes) - 1))
    for k in range(1, n_cap[1] + 1):
        f = k / (n_cap[1] + 0.35)
        rings.append((nodes[-1] + tangents[-1] * tube.caps[1] * f, radii[-1] * math.sqrt(1 - f * f), tangents[-1], -1))

    s = tube.segments
    theta = 2 * math.pi * np.arange(s) / s
    verts, centres, node_rings = [], [], {}
    for r, (centre, (ra, rb), tangent, node) in enumerate(rings):
        t = tangent / np.linalg.norm(tangent)
        u = np.asarray(tube.ref, float) - (np.dot(tube.ref, t)) * t
        u /= np.linalg.norm(u)
        v = np.cross(t, u)
        verts.append(centre + ra * np.cos(theta)[:, None] * u + rb * np.sin(theta)[:, None] * v)
        centres.append(np.repeat(centre[None], s, axis=0))
        if node in tube.node_joints:
            node_rings[tube.node_joints[node]] = np.arange(r * s, (r + 1) * s)
    n_ring = len(rings)
    first, last = rings[0], rings[-1]
    pole0 = first[0] - first[2] / np.linalg.norm(first[2]) * (0.3 * tube.spacing if tube.caps[0] > 0 else 0)
    pole1 = last[0] + last[2] / np.linalg.norm(last[2]) * (0.3 * tube.spacing if tube.caps[1] > 0 else 0)
    verts += [pole0[None], pole1[None]]
    centres += [pole0[None], pole1[None]]
    faces = []
    k = np.arange(s)
    for r in range(n_ring - 1):
        a, b = r * s + k, r * s + (k + 1) % s
        c, d = a + s, b + s
        faces += [np.stack([a, b, d], 1), np.stack([a, d, c], 1)]
    p0, p1 = n_ring * s, n_ring * s + 1
    faces.append(np.stack([np.full(s, p0), (k + 1) % s, k], 1))  # start cap, facing backwards
    last0 = (n_ring - 1) * s
    faces.append(np.stack([np.full(s, p1), last0 + k, last0 + (k + 1) % s], 1))
    return np.vstack(verts), np.vstack(faces), np.vstack(centres), node_rings


# ----------------------------------------------------------------------------------------------------------------
# Assembly: one mesh of N_VERTICES, skinning, joint regressor, shape space
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Mesh:
    """The assembled rest mesh before it is written: per-vertex part index and ring centre kept for the shapes."""

    vertices: np.ndarray  # [V, 3]
    faces: np.ndarray  # [F, 3]
    centres: np.ndarray  # [V, 3] axis point of each vertex's ring
    part: np.ndarray  # [V] index into `names`
    names: list
    joint_rings: dict  # joint id -> vertex ids of its ring
    weights: np.ndarray  # [V, 55]


def _assemble(p: np.ndarray) -> Mesh:
    parts = _parts(p)
    built = [_build_tube(t) for t in parts]
    spare = N_VERTICES - sum(len(b[0]) for b in built)
    if spare < 0:
        raise AssertionError(f"the parts need {-spare} vertices more than SMPL-X has")
    # The torso takes the spare vertices as extra rings; what is left (< one ring) are unused vertices at the pelvis.
    built[0] = _build_tube(parts[0], extra_rings=spare // parts[0].segments)
    bones = _bone_segments(p)
    verts, faces, centres, part_ids, weights, joint_rings, offset = [], [], [], [], [], {}, 0
    for i, (tube, (v, f, c, rings)) in enumerate(zip(parts, built)):
        verts.append(v)
        faces.append(f + offset)
        centres.append(c)
        part_ids.append(np.full(len(v), i))
        # Skinning: a soft-min over the distances to the part's bones, so limbs bend smoothly at the joints.
        dist = np.stack([_segment_distance(v, *bones[b]) for b in tube.bones], 1)  # [n, b]
        w = np.exp(-(dist - dist.min(1, keepdims=True)) / tube.softness)
        w[w < 0.02] = 0.0
        w_full = np.zeros((len(v), N_JOINTS))
        w_full[:, tube.bones] = w / w.sum(1, keepdims=True)
        weights.append(w_full)
        joint_rings.update({j: r + offset for j, r in rings.items()})
        offset += len(v)
    left = N_VERTICES - offset
    verts.append(np.zeros((left, 3)))
    centres.append(np.zeros((left, 3)))
    part_ids.append(np.full(left, 0))
    w_pad = np.zeros((left, N_JOINTS))
    w_pad[:, 0] = 1.0
    weights.append(w_pad)
    return Mesh(np.vstack(verts), np.vstack(faces), np.vstack(centres), np.concatenate(part_ids),
                [t.name for t in parts], joint_rings, np.vstack(weights))


def _joint_regressor(mesh: Mesh, p: np.ndarray) -> np.ndarray:
    """[55, V]: each joint is the mean of its ring (the ring's centre is the joint); the eyes, which sit on no
    ring, are the mean of the 6 head vertices nearest to them, pulled halfway toward the head's axis ring."""
    reg = np.zeros((N_JOINTS, N_VERTICES))
    for j, ring in mesh.joint_rings.items():
        reg[j, ring] = 1.0 / len(ring)
    head = np.flatnonzero(mesh.part == mesh.names.index("head"))
    jaw_ring = mesh.joint_rings[J["jaw"]]
    for name in ("left_eye_smplhf", "right_eye_smplhf"):
        near = head[np.argsort(np.linalg.norm(mesh.vertices[head] - p[J[name]], axis=1))[:6]]
        reg[J[name], near] += 0.5 / len(near)
        reg[J[name], jaw_ring] += 0.5 / len(jaw_ring)
    missing = [JOINT_NAMES[j] for j in range(N_JOINTS) if reg[j].sum() == 0]
    if missing:
        raise AssertionError(f"no ring regresses joints {missing}")
    return reg


def _shape_space(mesh: Mesh, p: np.ndarray, seed: int) -> np.ndarray:
    """[V, 3, 400] shape (0-9) and expression (300-309) directions; displacement per unit coefficient, metres.

    0 height, 1 girth, 2 shoulder width, 3 leg length, 4 head size, 5 belly, 6 arm length, 7 hip width,
    8 chest depth, 9 limb thickness; expression: smooth bumps on the front of the face.
    """
    v, c = mesh.vertices, mesh.centres
    names = np.array(mesh.names)[mesh.part]
    radial = v - c  # [V, 3] from the ring's axis point outward
    is_ = lambda *prefixes: np.array([any(n.endswith(x) or n == x for x in prefixes) for n in names])  # noqa: E731
    torso, head = is_("torso"), is_("head", "nose", "ear")
    arms = is_("arm", "palm", "index", "middle", "ring", "pinky", "thumb")
    legs = is_("leg", "foot")
    side = np.sign(v[:, 0])
    d = np.zeros((N_VERTICES, 3, SHAPE_SPACE + EXPR_SPACE))
    d[:, :, 0] = 0.04 * (v - np.array([0, -0.95, 0])) * np.array([0.35, 1.0, 0.35])
    d[:, :, 1] = radial * np.where(torso, 0.12, np.where(head, 0.03, 0.07))[:, None]
    upper = np.clip((v[:, 1] - 0.25) / 0.15, 0, 1) * torso
    d[:, 0, 2] = 0.015 * side * (arms + upper)
    d[:, 1, 3] = 0.06 * np.minimum(v[:, 1] - p[J["left_hip"], 1], 0) * legs
    d[:, :, 4] = 0.08 * (v - np.array([0, 0.69, 0.01])) * head[:, None]
    d[:, 2, 5] = 0.05 * np.exp(-(((v[:, 1] - 0.12) / 0.12) ** 2)) * np.clip(radial[:, 2] / 0.1, 0, None) * torso
    d[:, 0, 6] = 0.06 * (v[:, 0] - side * p[J["left_shoulder"], 0]) * arms
    lower = np.clip((0.1 - v[:, 1]) / 0.15, 0, 1) * torso
    d[:, 0, 7] = 0.1 * v[:, 0] * lower + 0.012 * side * legs
    d[:, 2, 8] = 0.1 * radial[:, 2] * np.clip(1 - np.abs(v[:, 1] - 0.3) / 0.12, 0, 1) * torso
    d[:, :, 9] = 0.1 * radial * (arms | legs)[:, None]
    rng = np.random.default_rng(seed)
    face = head & (v[:, 2] > 0.03)
    for k in range(N_EXPR):
        centre = np.array([rng.uniform(-0.05, 0.05), rng.uniform(0.6, 0.72), 0.1])
        bump = np.exp(-np.sum((v - centre) ** 2, axis=1) / (2 * 0.025**2)) * face
        d[:, :, SHAPE_SPACE + k] = 0.006 * bump[:, None] * rng.normal(size=3)
    return d


def _landmarks(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """51 face-landmark triangles on the front of the head (a 6 x 9 grid, first 51), barycentres at the middle."""
    head = mesh.names.index("head")
    on_head = np.flatnonzero(mesh.part[mesh.faces[:, 0]] == head)
    centroid = mesh.vertices[mesh.faces[on_head]].mean(1)  # [f, 3]
    front = on_head[centroid[:, 2] > 0.05]
    xs, ys = np.meshgrid(np.linspace(-0.045, 0.045, 9), np.linspace(0.6, 0.72, 6))
    targets = np.stack([xs.ravel(), ys.ravel()], 1)[:N_LANDMARKS]
    cxy = mesh.vertices[mesh.faces[front]].mean(1)[:, :2]
    idx = front[np.argmin(np.linalg.norm(cxy[None] - targets[:, None], axis=2), axis=1)]
    return idx.astype(np.int64), np.full((N_LANDMARKS, 3), 1.0 / 3.0)


def _extra_joint_targets(p: np.ndarray) -> dict[str, np.ndarray]:
    """The points of our surface that smplx's vertex-selected joints should sit on (SMPL-X frame)."""
    t = {"nose": np.array([0, 0.652, 0.134])}
    for short, side, s in (("l", "left", 1), ("r", "right", -1)):
        t[f"{short}eye"] = np.array([0.032 * s, 0.69, 0.11])
        t[f"{short}ear"] = np.array([0.105 * s, 0.675, -0.005])
        for finger in _FINGERS:
            tip = fingertip(p, side, finger)
            t[f"{short}{finger}"] = tip + 0.4 * (tip - p[J[f"{side}_{finger}3"]])  # just past the tip: the cap
        up = short.upper()
        t[f"{up}BigToe"] = np.array([0.095 * s, -0.94, 0.17])
        t[f"{up}SmallToe"] = np.array([0.14 * s, -0.94, 0.15])
        t[f"{up}Heel"] = np.array([0.10 * s, -0.95, -0.09])
    return t


def body_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Every array of the body file (see the module doc), float32 / int64, deterministic for a `seed`."""
    p = rest_joints()
    mesh = _assemble(p)
    reg = _joint_regressor(mesh, p)
    shapes = _shape_space(mesh, p, seed)
    lmk_idx, lmk_bary = _landmarks(mesh)
    # Permute vertices so that each vertex smplx selects by id is the surface point nearest its target.
    perm = np.arange(N_VERTICES)  # new index -> old index
    where = np.arange(N_VERTICES)  # old index -> new index
    used = mesh.faces.ravel()
    candidates = np.unique(used)
    for name, target in _extra_joint_targets(p).items():
        old = candidates[np.argmin(np.linalg.norm(mesh.vertices[candidates] - target, axis=1))]
        new, other_old = EXTRA_VERTEX_IDS[name], perm[EXTRA_VERTEX_IDS[name]]
        pos = where[old]
        perm[new], perm[pos] = old, other_old
        where[old], where[other_old] = new, pos
    kintree = np.stack([np.array(PARENTS), np.arange(N_JOINTS)]).astype(np.int64)
    eye = np.eye(45, dtype=np.float32)
    return {
        "v_template": mesh.vertices[perm].astype(np.float32),
        "f": where[mesh.faces].astype(np.int64),
        "J_regressor": reg[:, perm].astype(np.float32),
        "kintree_table": kintree,
        "weights": mesh.weights[perm].astype(np.float32),
        "shapedirs": shapes[perm].astype(np.float16),
        "posedirs": np.zeros((N_VERTICES, 3, 9 * (N_JOINTS - 1)), dtype=np.float16),
        "hands_componentsl": eye, "hands_componentsr": eye.copy(),
        "hands_meanl": np.zeros(45, np.float32), "hands_meanr": np.zeros(45, np.float32),
        "lmk_faces_idx": lmk_idx,  # face order is unchanged by the vertex permutation
        "lmk_bary_coords": lmk_bary.astype(np.float32),
        "joint2num": np.array(JOINT_NAMES),
    }


def write_body(path: str | os.PathLike, seed: int = 0) -> str:
    """Write the body as a compressed `.npz` at `path` (atomically) and return the path."""
    from lucidkit.export import atomic_write

    arrays = body_arrays(seed)
    with atomic_write(path) as f:
        np.savez_compressed(f, **arrays)
    return str(path)
