"""How well an avatar run matches its pose: silhouette IoU with the posed body at the eval cameras, and its colour.

    python -m tools.avatar.measure RUN_FOLDER [RUN_FOLDER ...]

For each run folder written by `lucidkit avatar`: the body is posed again from the run's config, rendered as ground-
truth Gaussians (`toyworld.people.person_splats`) from the two eval rings the benchmarks use, and compared with the
run's `scene.ply` from the same cameras: IoU of the masks (alpha > 0.5), the size ratio (sqrt of the mask areas), and
the mean colour of the avatar's covered pixels. Prints one line per run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from lucidkit import config as config_lib
from lucidkit.avatar import AvatarConfig
from lucidkit.bench.quality import eval_cameras
from lucidkit.body.pose import load_pose, pose_body
from lucidkit.runs import render_views
from lucidkit.splat.ply import read_ply
from lucidkit.toyworld.people import person_splats


def body_masks(pose: str, camera=None, smplx_models=None, gender: str = "neutral") -> torch.Tensor:
    """[C, H, W] bool: the posed body's silhouette (alpha > 0.5) at the eval cameras of `camera` (default: the
    avatar's camera config)."""
    cams = eval_cameras(camera if camera is not None else AvatarConfig().camera)
    body = pose_body(load_pose(pose), smplx_models, gender)
    _, alpha, _ = render_views(person_splats(body, "red", torch.Generator().manual_seed(0)), cams)
    return alpha[..., 0] > 0.5


def measure(folder: Path, against: torch.Tensor | None = None) -> dict:
    """IoU and size of the run's silhouette against its own posed body (or the masks `against`), and its colour."""
    cfg = config_lib.from_dict(AvatarConfig, config_lib.load_yaml(folder / "config.yaml"))
    if against is None:
        body = pose_body(load_pose(cfg.body.pose, cfg.body.frame), cfg.body.smplx_models, cfg.body.gender)
        _, truth_alpha, _ = render_views(person_splats(body, "red", torch.Generator().manual_seed(0)),
                                         eval_cameras(cfg.camera))
        against = truth_alpha[..., 0] > 0.5
    rgb, alpha, _ = render_views(read_ply(folder / "scene.ply").splats, eval_cameras(cfg.camera))
    a, b = alpha[..., 0] > 0.5, against  # [C, H, W]
    iou = float((a & b).sum() / (a | b).sum().clamp_min(1))
    size = float((a.sum() / b.sum().clamp_min(1)).sqrt())
    colour = rgb[a].mean(0).tolist() if bool(a.any()) else [float("nan")] * 3
    return {"run": str(folder), "pose": cfg.body.pose, "control": cfg.control.model, "iou": iou, "size": size,
            "colour": [round(c, 3) for c in colour]}


def main(argv=None) -> None:
    for folder in argv if argv is not None else sys.argv[1:]:
        r = measure(Path(folder))
        print(f"{r['run']}: pose {r['pose']}, ControlNet {r['control']}: silhouette IoU {r['iou']:.3f}, "
              f"size {r['size']:.2f}, mean colour {r['colour']}")


if __name__ == "__main__":
    main()
