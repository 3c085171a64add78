"""The web splat formats, written by gsplat's exporter (`gsplat.exporter.export_splats`, pure torch, runs on CPU).

- `splat` (antimatter15): 32 bytes per Gaussian: position float32[3], scale float32[3] (linear, not log),
  RGBA uint8[4] (rgb = 0.5 + C0 * f_dc, alpha = sigmoid(opacity)), rotation uint8[4] (wxyz, q * 128 + 128).
  SH degree 0 only: view-dependent colour is dropped.
- `ply-compressed` (PlayCanvas / SuperSplat): Gaussians sorted along a Morton curve, in chunks of 256; per chunk
  the float min/max of position, log scale and rgb; per Gaussian position and log scale in 11/10/11 bits, the
  rotation in 2+10+10+10 bits (smallest three), rgba in 8 bits each; higher SH as uint8 in [-4, 4).

Both are written in the -y-up frame (COLMAP/OpenCV, the frame of 3DGS captures), the one the reference viewers
assume: SuperSplat turns every scene 180 degrees about z to make -y up, and antimatter15's cameras look along it.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from lucidkit.export import atomic_write
from lucidkit.splat.transform import UP_ROTATIONS, SceneFrame

VIEWER_UP = "-y"  # the up axis the web splat viewers assume
_GSPLAT_NAMES = {"splat": "splat", "ply-compressed": "ply_compressed"}


def rotation_between(up_from: str, up_to: str) -> torch.Tensor:
    """[3, 3] float64 proper rotation taking a frame whose up axis is `up_from` to one whose up axis is `up_to`
    (both through the z-up engine frame of `UP_ROTATIONS`)."""
    to_z = torch.tensor(UP_ROTATIONS[up_from], dtype=torch.float64)
    from_z = torch.tensor(UP_ROTATIONS[up_to], dtype=torch.float64).T  # a rotation's inverse is its transpose
    return from_z @ to_z


def rotate_splats(splats: dict, rotation: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw Gaussian parameters with the world rotated by `rotation` [3, 3]: means, quaternions and SH rotate;
    scales, opacities and base colours do not (new float32 tensors)."""
    frame = SceneFrame(up="custom", rotation=rotation, center=torch.zeros(3, dtype=torch.float64), scale=1.0)
    return frame.to_engine(splats)


def splat_format_bytes(splats: dict, name: str, up: str = "z") -> bytes:
    """The file content of format `name` ('splat' or 'ply-compressed') for raw parameters `splats` whose up axis
    is `up`."""
    from gsplat.exporter import export_splats

    params = {k: v.detach().cpu().float() for k, v in splats.items()}
    if up != VIEWER_UP:
        params = rotate_splats(params, rotation_between(up, VIEWER_UP))
    with torch.no_grad():
        data = export_splats(
            means=params["means"],  # [N, 3]
            scales=params["scales"],  # [N, 3] log
            quats=params["quats"],  # [N, 4] wxyz
            opacities=params["opacities"],  # [N] logit
            sh0=params["sh0"],  # [N, 1, 3]
            shN=params["shN"],  # [N, K-1, 3]
            format=_GSPLAT_NAMES[name],
        )
    if name == "ply-compressed" and params["shN"].shape[1] == 0:
        # Degree 0: gsplat still declares an `sh` element, with no properties and no data. PlayCanvas's reader
        # accepts a third element only with 9/24/45 f_rest properties, so leave the empty one out.
        head, sep, body = data.partition(b"end_header\n")
        data = re.sub(rb"element sh \d+\n", b"", head) + sep + body
    return data


def write_splat_format(splats: dict, name: str, path: str | Path, up: str = "z") -> Path:
    """Write format `name` to `path` atomically; return the path."""
    data = splat_format_bytes(splats, name, up)
    with atomic_write(path) as f:
        f.write(data)
    return Path(path)
