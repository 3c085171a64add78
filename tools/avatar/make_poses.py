"""Write the named built-in poses to samples/poses/<name>.json (SMPL-X parameters, axis-angle radians).

    python -m tools.avatar.make_poses [--out DIR]

Rotations in SMPL-X's frame (y up, the body faces +z, its left is +x), local to each joint. The rest pose is a
T-pose. A left arm (along +x) turns down with a negative angle about z, a right arm with a positive one; a leg
swings forward with a negative angle about x; knees bend with a positive angle about x.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lucidkit.body.pose import BODY_POSE_INDEX, SmplxParams, compose
from lucidkit.export import atomic_write

DEFAULT = Path(__file__).resolve().parents[2] / "samples" / "poses"


def _arms(body: np.ndarray, lift: float, forward: float = 0.0) -> None:
    """Both arms turned by `lift` about z (negative = down, mirrored), then `forward` about x (negative = front)."""
    body[BODY_POSE_INDEX["left_shoulder"]] = compose([forward, 0, 0], [0, 0, lift])
    body[BODY_POSE_INDEX["right_shoulder"]] = compose([forward, 0, 0], [0, 0, -lift])


def poses() -> dict[str, SmplxParams]:
    """name -> parameters of every built-in pose."""
    out = {}
    for name, lift in (("t-pose", 0.0), ("a-pose", -0.75), ("arms-down", -1.3), ("arms-up", 1.2)):
        body = np.zeros((21, 3))
        _arms(body, lift)
        out[name] = body
    walk = np.zeros((21, 3))
    walk[BODY_POSE_INDEX["left_shoulder"]] = compose([-0.35, 0, 0], [0, 0, -1.3])  # left arm forward
    walk[BODY_POSE_INDEX["right_shoulder"]] = compose([0.35, 0, 0], [0, 0, 1.3])  # right arm back
    walk[BODY_POSE_INDEX["left_elbow"]] = [0, -0.3, 0]
    walk[BODY_POSE_INDEX["right_elbow"]] = [0, 0.3, 0]
    walk[BODY_POSE_INDEX["left_hip"]] = [0.35, 0, 0]  # left leg back
    walk[BODY_POSE_INDEX["right_hip"]] = [-0.45, 0, 0]  # right leg forward
    walk[BODY_POSE_INDEX["left_knee"]], walk[BODY_POSE_INDEX["right_knee"]] = [0.5, 0, 0], [0.15, 0, 0]
    out["walk"] = walk
    sit = np.zeros((21, 3))
    _arms(sit, -1.3, forward=-0.35)
    sit[BODY_POSE_INDEX["left_hip"]] = sit[BODY_POSE_INDEX["right_hip"]] = [-1.45, 0, 0]
    sit[BODY_POSE_INDEX["left_knee"]] = sit[BODY_POSE_INDEX["right_knee"]] = [1.5, 0, 0]
    out["sit"] = sit
    wave = np.zeros((21, 3))
    wave[BODY_POSE_INDEX["left_shoulder"]] = [0, 0, -1.3]
    wave[BODY_POSE_INDEX["right_shoulder"]] = [0, 0, -0.3]  # right arm a little above level
    wave[BODY_POSE_INDEX["right_elbow"]] = [0, 0, -1.4]  # forearm up
    out["wave"] = wave
    return {name: SmplxParams(body_pose=body.reshape(-1).astype(np.float32)) for name, body in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, params in poses().items():
        with atomic_write(args.out / f"{name}.json", "w") as f:
            json.dump(params.to_json(), f)
            f.write("\n")
        print(f"wrote {args.out / (name + '.json')}")


if __name__ == "__main__":
    main()
