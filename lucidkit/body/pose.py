"""Pose input: SMPL-X parameter files, AMASS-style sequences and named built-in poses -> a posed body.

    params = load_pose("a-pose")                       # or "pose.npz", "pose.json", ("walk.npz", frame=120)
    body = pose_body(params, models_dir=None)          # the built-in body unless a SMPL-X folder is given
    body.vertices [V, 3], body.faces [F, 3], body.joints [J, 3]   # normalised, y-up (SMPL-X frame)
    body.world_vertices() [V, 3]                                  # lucidkit's z-up world, facing +x

Frames. SMPL-X's frame is y up, the body faces +z and its left side is +x (metres). `pose_body` centres the
posed body's bounding box on the origin and scales it so its farthest vertex is `fit_radius` from the centre
(0.58, the toy world's object size, fills the recipe's cameras); the result stays y-up. lucidkit's world is z up
with objects facing +x (docs/engine.md), so `to_world` maps (x, y, z)_smplx -> (z, x, y)_world: the front (+z)
becomes +x, up (+y) becomes +z and the body's left (+x) becomes +y, a proper rotation (det +1).

AMASS sequences store the root orientation in a z-up world; `load_pose` turns it into SMPL-X's y-up frame
(a -90 degree rotation about x), so the body stands upright. Hand poses are axis-angle (45 numbers per hand),
relative to flat hands (smplx's `flat_hand_mean=True`), as AMASS stores them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from lucidkit.body.procedural import JOINT_NAMES
from lucidkit.errors import UserError

ENV_MODELS = "LUCIDKIT_SMPLX_MODELS"
DEFAULT_FIT_RADIUS = 0.58  # the toy world's objects fit this ball (toyworld.objects.FIT_RADIUS)
MAX_BETAS, MAX_EXPRESSION = 300, 100
SMPLX_URL = "https://smpl-x.is.tue.mpg.de"

# SMPL-X (y up) -> lucidkit world (z up, facing +x): rows are the world axes in SMPL-X coordinates.
SMPLX_TO_WORLD = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

# Sizes of every SMPL-X parameter (numbers per frame); betas and expression may be shorter.
SIZES = {"global_orient": 3, "body_pose": 63, "left_hand_pose": 45, "right_hand_pose": 45, "jaw_pose": 3,
         "leye_pose": 3, "reye_pose": 3, "transl": 3}


# Index of each body joint in body_pose (SMPL-X joint id - 1; the root, joint 0, is global_orient).
BODY_POSE_INDEX = {name: i - 1 for i, name in enumerate(JOINT_NAMES[:22]) if i > 0}


def builtin_pose_names() -> tuple[str, ...]:
    """Names of the poses shipped in samples/poses/ (file stems)."""
    folder = resources.files("lucidkit.samples") / "poses"
    return tuple(sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json")))


@dataclass
class SmplxParams:
    """One body pose in SMPL-X parameters (axis-angle radians, SMPL-X's y-up frame); unset parts are zero."""

    global_orient: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # [3]
    body_pose: np.ndarray = field(default_factory=lambda: np.zeros(63, np.float32))  # [21 * 3]
    betas: np.ndarray = field(default_factory=lambda: np.zeros(10, np.float32))  # [n <= 300]
    left_hand_pose: np.ndarray = field(default_factory=lambda: np.zeros(45, np.float32))  # [15 * 3]
    right_hand_pose: np.ndarray = field(default_factory=lambda: np.zeros(45, np.float32))  # [15 * 3]
    jaw_pose: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # [3]
    leye_pose: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # [3]
    reye_pose: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # [3]
    expression: np.ndarray = field(default_factory=lambda: np.zeros(10, np.float32))  # [m <= 100]
    transl: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # [3], metres
    source: str = ""  # where the pose came from, for messages and the manifest

    def to_json(self) -> dict:
        """Plain lists, as the built-in pose files store them."""
        return {name: getattr(self, name).astype(float).round(6).tolist() for name in (*SIZES, "betas", "expression")}


def _array(value, name: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {name} must be numbers") from None
    if not np.isfinite(arr).all():
        raise UserError(f"{where}: {name} has NaN or infinite values")
    return arr


def params_from_dict(data: dict, where: str) -> SmplxParams:
    """Check and convert a mapping of SMPL-X parameters (arrays or lists; a leading batch of 1 is allowed)."""
    known = set(SIZES) | {"betas", "expression"}
    if "body_pose" not in data and "global_orient" not in data:
        raise UserError(f"{where}: expected SMPL-X parameters (global_orient (3), body_pose (63), betas, ...); "
                        f"found {', '.join(sorted(data)) or 'nothing'}")
    values = {}
    for name in known & set(data):
        arr = _array(data[name], name, where).reshape(-1)
        if name in SIZES and arr.size != SIZES[name]:
            extra = " (hand poses are 15 joints x 3 axis-angle numbers; PCA hand poses are not supported)" \
                if "hand" in name else ""
            raise UserError(f"{where}: {name} must have {SIZES[name]} numbers, got {arr.size}{extra}")
        limit = {"betas": MAX_BETAS, "expression": MAX_EXPRESSION}.get(name)
        if limit is not None and not 1 <= arr.size <= limit:
            raise UserError(f"{where}: {name} must have 1 to {limit} numbers, got {arr.size}")
        values[name] = arr.astype(np.float32)
    return SmplxParams(**values, source=where)


# A rotation of -90 degrees about x: AMASS's z-up world -> SMPL-X's y-up frame.
_Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _rotmat(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues: axis-angle [3] -> rotation matrix [3, 3]."""
    angle = float(np.linalg.norm(axis_angle))
    if angle < 1e-12:
        return np.eye(3)
    k = axis_angle / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def _axis_angle(rot: np.ndarray) -> np.ndarray:
    """Rotation matrix [3, 3] -> axis-angle [3] (angle in [0, pi])."""
    cos = np.clip((np.trace(rot) - 1) / 2, -1.0, 1.0)
    angle = math.acos(cos)
    if angle < 1e-8:
        return np.zeros(3)
    if math.pi - angle < 1e-4:  # near a half turn: the axis is the dominant column of R + I
        sym = (rot + np.eye(3)) / 2
        axis = sym[:, int(np.argmax(np.diag(sym)))]
        return axis / np.linalg.norm(axis) * angle
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]]) / (2 * math.sin(angle))
    return axis * angle


def compose(*axis_angles) -> np.ndarray:
    """The axis-angle of R(a1) @ R(a2) @ ... (a2 applied first)."""
    rot = np.eye(3)
    for a in axis_angles:
        rot = rot @ _rotmat(np.asarray(a, float))
    return _axis_angle(rot)


def params_from_sequence(data: dict, frame: Optional[int], where: str) -> SmplxParams:
    """One frame of an AMASS-style sequence: `poses` [T, 66 | 72 | 156 | 165], optional `trans` [T, 3] and
    `betas`; the root orientation turned from AMASS's z-up world into SMPL-X's y-up frame."""
    poses = _array(data["poses"], "poses", where)
    if poses.ndim != 2 or poses.shape[1] not in (66, 72, 156, 165):
        raise UserError(f"{where}: poses must be [frames, 66 | 72 | 156 | 165] (SMPL / SMPL-H / SMPL-X axis-angle), "
                        f"got shape {list(poses.shape)}")
    n = poses.shape[0]
    frame = 0 if frame is None else frame
    if not 0 <= frame < n:
        raise UserError(f"{where}: frame {frame} is out of range; the sequence has {n} frames (0 to {n - 1})")
    row = poses[frame]
    values = {"global_orient": compose(_axis_angle(_Z_UP_TO_Y_UP), row[:3]), "body_pose": row[3:66]}
    if poses.shape[1] == 156:  # SMPL-H: body, then both hands
        values.update(left_hand_pose=row[66:111], right_hand_pose=row[111:156])
    elif poses.shape[1] == 165:  # SMPL-X: body, jaw, eyes, hands
        values.update(jaw_pose=row[66:69], leye_pose=row[69:72], reye_pose=row[72:75],
                      left_hand_pose=row[75:120], right_hand_pose=row[120:165])
    if "betas" in data:
        values["betas"] = _array(data["betas"], "betas", where).reshape(-1)
    return params_from_dict(values, f"{where} frame {frame}")


def load_pose(spec: str | os.PathLike, frame: Optional[int] = None) -> SmplxParams:
    """A pose from a built-in name ("a-pose"), a SMPL-X parameter file (.npz / .json) or an AMASS-style sequence
    (.npz with `poses`; `frame` picks the frame, default 0). Bad input raises UserError with one line."""
    spec = str(spec)
    names = builtin_pose_names()
    if spec in names:
        path = Path(str(resources.files("lucidkit.samples") / "poses" / f"{spec}.json"))
        return replace(params_from_dict(json.loads(path.read_text()), f"pose '{spec}'"), source=spec)
    path = Path(spec).expanduser()
    if not path.is_file():
        if path.suffix.lower() not in (".npz", ".json"):
            raise UserError(f"unknown pose '{spec}': expected one of {', '.join(names)} or a .npz / .json file")
        raise UserError(f"pose file {path} does not exist")
    where = f"pose file {path}"
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"{where} is not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise UserError(f"{where}: expected a JSON object of SMPL-X parameters")
    elif path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except (ValueError, OSError) as err:
            raise UserError(f"{where} is not a readable .npz ({err})") from None
    else:
        raise UserError(f"{where}: expected a .npz or .json file")
    if "poses" in data:
        return params_from_sequence(data, frame, where)
    if frame not in (None, 0):
        raise UserError(f"{where} holds one pose, not a sequence: --frame {frame} does not apply")
    return params_from_dict(data, where)


# ----------------------------------------------------------------------------------------------------------------
# The body model and posing
# ----------------------------------------------------------------------------------------------------------------


def builtin_models_dir() -> Path:
    """The folder holding the built-in procedural body as `smplx/SMPLX_NEUTRAL.npz` (samples/body)."""
    return Path(str(resources.files("lucidkit.samples") / "body"))


def resolve_models_dir(models_dir: Optional[str | os.PathLike] = None, gender: str = "neutral") -> tuple[Path, str]:
    """(folder for `smplx.create`, description). `models_dir` (else $LUCIDKIT_SMPLX_MODELS, else the built-in
    body) must hold `smplx/SMPLX_<GENDER>.npz`; a folder that is itself `smplx/` is accepted too."""
    if gender not in ("neutral", "male", "female"):
        raise UserError(f"gender must be neutral, male or female; got {gender!r}")
    given = models_dir if models_dir is not None else os.environ.get(ENV_MODELS) or None
    if given is None:
        return builtin_models_dir(), "built-in procedural body (lucidkit samples/body)"
    root = Path(given).expanduser()
    name = f"SMPLX_{gender.upper()}"
    if (root / "smplx" / f"{name}.npz").is_file():
        return root, f"SMPL-X {gender} from {root / 'smplx' / (name + '.npz')}"
    if root.name == "smplx" and (root / f"{name}.npz").is_file():  # DIR is the smplx folder itself
        return root.parent, f"SMPL-X {gender} from {root / (name + '.npz')}"
    pkl = [p for p in (root / "smplx" / f"{name}.pkl", root / f"{name}.pkl") if p.is_file()]
    origin = "--smplx-models" if models_dir is not None else f"${ENV_MODELS}"
    if pkl:
        raise UserError(f"{pkl[0]} is a .pkl SMPL-X file, which needs chumpy to load; use the .npz files of the "
                        f"SMPL-X download ({SMPLX_URL}, 'SMPL-X v1.1 NPZ+PKL') in {root / 'smplx'}")
    raise UserError(f"no SMPL-X body model in {root} ({origin}): expected {root / 'smplx' / (name + '.npz')}; "
                    f"register and download SMPL-X from {SMPLX_URL}, unzip it so that this file exists, "
                    f"or leave {origin} unset to use the built-in body")


@lru_cache(maxsize=4)
def _load_model(folder: str, gender: str, num_betas: int, num_expression: int):
    try:
        import smplx
    except ImportError:
        raise UserError("avatars need the smplx package: pip install 'lucidkit[avatar]'") from None
    try:
        return smplx.create(folder, model_type="smplx", gender=gender, ext="npz", use_pca=False,
                            flat_hand_mean=True, num_betas=num_betas, num_expression_coeffs=num_expression)
    except Exception as err:  # noqa: BLE001 - a bad file fails in numpy, pickle, zipfile or smplx itself
        raise UserError(f"cannot load the SMPL-X body model in {folder} ({type(err).__name__}: {err})") from None


@dataclass
class PosedBody:
    """A posed body, normalised: `(metres - centre) * scale`, still y-up (SMPL-X frame)."""

    vertices: torch.Tensor  # [V, 3]
    faces: torch.Tensor  # [F, 3] long
    joints: torch.Tensor  # [J, 3] every joint smplx outputs (55 body + vertex-selected extras + landmarks)
    vertex_joint: torch.Tensor  # [V] long, the joint with the largest skinning weight of each vertex
    centre: torch.Tensor  # [3] metres, SMPL-X frame
    scale: float  # normalised units per metre
    model: str = ""  # which body model posed it
    source: str = ""  # which pose

    def world_vertices(self) -> torch.Tensor:
        """[V, 3] in lucidkit's z-up world, facing +x."""
        return to_world(self.vertices)

    def world_joints(self) -> torch.Tensor:
        """[J, 3] in lucidkit's z-up world, facing +x."""
        return to_world(self.joints)

    def frame(self) -> dict:
        """The body's frame for a manifest: normalised = (smplx metres - centre) * scale; world = R @ normalised."""
        return {"centre_m": [round(float(c), 6) for c in self.centre], "scale_per_m": round(self.scale, 6),
                "smplx_to_world": SMPLX_TO_WORLD.tolist(), "up": "+y (SMPL-X)", "front": "+z (SMPL-X)"}


def to_world(points: torch.Tensor) -> torch.Tensor:
    """[..., 3] SMPL-X frame (y up, facing +z) -> lucidkit world (z up, facing +x)."""
    return points @ SMPLX_TO_WORLD.to(points).T


def from_world(points: torch.Tensor) -> torch.Tensor:
    """[..., 3] lucidkit world -> SMPL-X frame (the inverse of `to_world`)."""
    return points @ SMPLX_TO_WORLD.to(points)


def pose_body(
    params: SmplxParams,
    models_dir: Optional[str | os.PathLike] = None,
    gender: str = "neutral",
    fit_radius: float = DEFAULT_FIT_RADIUS,
) -> PosedBody:
    """Pose the body model (see `resolve_models_dir`) with `params`, centred and scaled to `fit_radius`."""
    folder, description = resolve_models_dir(models_dir, gender)
    n_betas, n_expr = int(params.betas.size), int(params.expression.size)
    model = _load_model(str(folder), gender, n_betas, n_expr)
    batch = {name: torch.from_numpy(np.asarray(getattr(params, name), np.float32))[None]
             for name in (*SIZES, "betas", "expression")}
    # A model with fewer shape components than the file has betas ignores the extra ones (smplx trims its space).
    batch["betas"] = batch["betas"][:, : model.num_betas]
    batch["expression"] = batch["expression"][:, : model.num_expression_coeffs]
    with torch.no_grad():
        out = model(return_verts=True, **batch)
    vertices, joints = out.vertices[0].float(), out.joints[0].float()  # [V, 3], [J, 3]
    faces = torch.as_tensor(np.asarray(model.faces, dtype=np.int64))
    used = vertices[torch.unique(faces)]  # unreferenced vertices (if any) do not count for the fit
    centre = 0.5 * (used.amin(0) + used.amax(0))
    scale = fit_radius / float((used - centre).norm(dim=1).max())
    vertex_joint = model.lbs_weights.argmax(1)  # [V]
    return PosedBody((vertices - centre) * scale, faces, (joints - centre) * scale, vertex_joint, centre, scale,
                     description, params.source)


def random_pose(generator: torch.Generator, betas_std: float = 0.8) -> SmplxParams:
    """A random plausible standing pose for the toy world: arms anywhere from down to up, elbows and knees
    bent within their range, legs swung forward / back and apart, a little spine and head motion; body
    shape from N(0, betas_std) on the first two components. Deterministic for the generator's state."""
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand((), generator=generator))  # noqa: E731
    body = np.zeros((21, 3))
    for side, s in (("left", 1.0), ("right", -1.0)):
        lift = u(-1.35, 1.1)  # about z (mirrored): negative lowers the arm toward the side, positive raises it
        swing = u(-0.5, 0.5)  # then about x and y: a lowered or a level arm moves forward / back
        body[BODY_POSE_INDEX[f"{side}_shoulder"]] = compose([swing, -s * swing, 0], [0, 0, s * lift])
        body[BODY_POSE_INDEX[f"{side}_elbow"]] = [0, -s * u(0.0, 1.6), 0]  # forearm bends forward
        body[BODY_POSE_INDEX[f"{side}_hip"]] = compose([0, 0, s * u(0.0, 0.35)], [u(-0.9, 0.4), 0, 0])
        body[BODY_POSE_INDEX[f"{side}_knee"]] = [u(0.0, 1.2), 0, 0]
    body[BODY_POSE_INDEX["spine2"]] = [u(-0.15, 0.15), u(-0.3, 0.3), u(-0.1, 0.1)]
    body[BODY_POSE_INDEX["neck"]] = [u(-0.2, 0.2), u(-0.4, 0.4), 0]
    betas = np.zeros(10, np.float32)
    betas[:2] = torch.randn(2, generator=generator).numpy() * betas_std
    return SmplxParams(body_pose=body.reshape(-1).astype(np.float32), betas=betas, source="random")

