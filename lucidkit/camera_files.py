"""Cameras that come with a scene: INRIA 3DGS `cameras.json`, nerfstudio `transforms.json`; and robust scene bounds.

A trained Gaussian scene usually ships with the cameras it was captured from. `read_camera_file` reads them into
one `CameraSet` of world-to-camera OpenCV matrices (camera x right, y down, z forward; docs/engine.md) in the
**file's own world frame** (the frame of the `.ply` they came with):

    INRIA 3DGS cameras.json      a list of {"position": [3] camera centre, "rotation": [3][3] camera-to-world
                                 rotation (columns = camera axes in world, OpenCV), "fx", "fy", "width", "height"}
    nerfstudio transforms.json   {"fl_x", "fl_y", "cx", "cy", "w", "h", "frames": [{"transform_matrix": [4][4]
                                 camera-to-world, OpenGL axes (x right, y up, z back)}, ...]}; per-frame intrinsics
                                 override the top-level ones

`CameraSet.transformed(rotation, center, scale)` moves the cameras into the engine's frame (the same similarity
that moves the Gaussians: x_engine = scale * (rotation @ x_file - center)), and `CameraSetSampler` draws random
training views from them with the `OrbitSampler` interface. Renders are square: each camera keeps its vertical
field of view and optical axis, and its image is the centred square crop at the render size.

`robust_bounds(means, opacities)` is the orbit fit used when no cameras are given: an opacity-weighted centre and
radius that ignore floaters (the 2nd-98th percentiles by default).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from lucidkit.cameras import CameraBatch, intrinsics
from lucidkit.errors import UserError

GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
"""Camera axes OpenGL (x right, y up, z back) <-> OpenCV (x right, y down, z forward); its own inverse."""


class CameraFileError(UserError):
    """A camera file that cannot be read; the message names the file and the problem."""


# ----------------------------------------------------------------------------------------------------------------
# Robust bounds: the orbit fitted to a scene
# ----------------------------------------------------------------------------------------------------------------


def weighted_quantile(values: Tensor, weights: Tensor, q: Tensor) -> Tensor:
    """Quantiles `q` [Q] in [0, 1] of `values` [N] under non-negative `weights` [N] (step interpolation)."""
    order = torch.argsort(values)
    cdf = torch.cumsum(weights[order], dim=0)  # [N]
    cdf = cdf / cdf[-1].clamp_min(1e-12)
    index = torch.searchsorted(cdf, q.to(cdf.dtype).clamp(0, 1)).clamp(max=values.shape[0] - 1)  # [Q]
    return values[order][index]


def robust_bounds(means: Tensor, opacities: Tensor | None = None, percentile: float = 2.0) -> tuple[Tensor, float]:
    """(centre [3], radius) of a scene's Gaussians, ignoring stray ones.

    Args:
        means: `[N, 3]` positions.
        opacities: `[N]` activated opacities in [0, 1] used as weights (None = equal weights), so that faint
            floaters count little.
        percentile: share (in %) cut at each end: the centre is the middle of the per-axis
            [percentile, 100 - percentile] box, the radius the (100 - percentile)th percentile of the distance to it.
    """
    x = means.detach().to(torch.float64)  # [N, 3]
    w = torch.ones(x.shape[0], dtype=torch.float64) if opacities is None else opacities.detach().to(torch.float64)
    w = w.clamp_min(1e-6)  # a scene of invisible Gaussians still has bounds
    q = torch.tensor([percentile / 100.0, 1.0 - percentile / 100.0], dtype=torch.float64)
    box = torch.stack([weighted_quantile(x[:, i], w, q) for i in range(3)], dim=1)  # [2, 3] (low, high)
    center = box.mean(dim=0)  # [3]
    distance = (x - center).norm(dim=1)  # [N]
    radius = float(weighted_quantile(distance, w, q[1:])[0])
    return center, max(radius, 1e-6)


# ----------------------------------------------------------------------------------------------------------------
# Camera files
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class CameraSet:
    """C cameras read from a file: world-to-camera OpenCV matrices and pinhole intrinsics at their own image size."""

    viewmats: Tensor  # [C, 4, 4] float64 world-to-camera (OpenCV)
    Ks: Tensor  # [C, 3, 3] float64 pixel intrinsics at (widths, heights)
    widths: Tensor  # [C] image widths in pixels
    heights: Tensor  # [C] image heights in pixels
    names: list[str]
    source: Path

    def __len__(self) -> int:
        return self.viewmats.shape[0]

    def centers(self) -> Tensor:
        """[C, 3] camera positions in world coordinates."""
        rot = self.viewmats[:, :3, :3]  # [C, 3, 3]
        return -(rot.transpose(1, 2) @ self.viewmats[:, :3, 3:4])[..., 0]

    def transformed(self, rotation: Tensor, center: Tensor, scale: float) -> "CameraSet":
        """The same cameras in the frame x' = scale * (rotation @ x - center) (`rotation` [3, 3] proper, `center` [3]).

        The camera's rotation composes with `rotation`; its translation scales with the scene, so images stay the same.
        """
        rot = rotation.to(torch.float64)
        view = self.viewmats.clone()
        view[:, :3, :3] = self.viewmats[:, :3, :3] @ rot.T  # [C, 3, 3]
        eye = scale * ((rot @ self.centers().T).T - center.to(torch.float64))  # [C, 3] new camera centres
        view[:, :3, 3] = -(view[:, :3, :3] @ eye[..., None])[..., 0]
        return replace(self, viewmats=view)

    def fovy_rad(self) -> Tensor:
        """[C] vertical fields of view."""
        return 2.0 * torch.atan(0.5 * self.heights.to(torch.float64) / self.Ks[:, 1, 1])

    def batch(self, index: Tensor, size: int, orbit_center: Tensor | None = None) -> CameraBatch:
        """Cameras `index` [B] as a square `size`² CameraBatch (float32): each keeps its vertical field of view and
        looks along its own optical axis (a centred square crop). Orbit angles (for view prompts) are measured
        around `orbit_center` [3] (default the origin): azimuth from +x toward +y, polar from +z."""
        fovy = self.fovy_rad()[index]  # [B]
        eye = self.centers()[index] - (torch.zeros(3, dtype=torch.float64) if orbit_center is None
                                       else orbit_center.to(torch.float64))  # [B, 3]
        radius = eye.norm(dim=1).clamp_min(1e-9)  # [B]
        azimuth = torch.rad2deg(torch.atan2(eye[:, 1], eye[:, 0]))
        polar = torch.rad2deg(torch.acos((eye[:, 2] / radius).clamp(-1, 1)))
        return CameraBatch(
            viewmats=self.viewmats[index].float(), Ks=intrinsics(fovy.float(), size, size), width=size, height=size,
            azimuth_deg=torch.remainder(azimuth + 180.0, 360.0).float() - 180.0, polar_deg=polar.float(),
            radius=radius.float(), fovy_rad=fovy.float(),
        )

    def evenly_spaced(self, n: int, size: int) -> CameraBatch:
        """At most `n` cameras spread evenly over the file's order (a capture path), for previews and videos."""
        index = torch.linspace(0, len(self) - 1, min(n, len(self))).round().long()
        return self.batch(index, size)


def read_camera_file(path: str | os.PathLike) -> CameraSet:
    """Read an INRIA 3DGS `cameras.json` or a nerfstudio `transforms.json` (told apart by content).

    Raises CameraFileError naming the file and the problem (unreadable JSON, no cameras, missing or non-finite
    fields, rotations that are not rotations).
    """
    path = Path(path)
    if not path.is_file():
        raise CameraFileError(f"{path}: no such camera file" if not path.exists() else f"{path}: not a file")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CameraFileError(f"{path}: not a JSON camera file ({e})") from None
    if isinstance(data, list):
        cams = _read_inria(path, data)
    elif isinstance(data, dict) and "frames" in data:
        cams = _read_nerfstudio(path, data)
    else:
        raise CameraFileError(f"{path}: expected an INRIA cameras.json (a list of cameras) or a nerfstudio "
                              "transforms.json (an object with 'frames')")
    if len(cams) == 0:
        raise CameraFileError(f"{path}: holds no cameras")
    if not (torch.isfinite(cams.viewmats).all() and torch.isfinite(cams.Ks).all()):
        raise CameraFileError(f"{path}: has NaN or infinite camera values")
    if not ((cams.Ks[:, 0, 0] > 0).all() and (cams.Ks[:, 1, 1] > 0).all() and (cams.heights > 0).all()):
        raise CameraFileError(f"{path}: focal lengths and image sizes must be positive")
    rot = cams.viewmats[:, :3, :3]
    eye = torch.eye(3, dtype=torch.float64).expand_as(rot)
    bad = ((rot @ rot.transpose(1, 2) - eye).abs().amax(dim=(1, 2)) > 1e-3) | (torch.det(rot) < 0)
    if bad.any():
        i = int(torch.nonzero(bad)[0])
        raise CameraFileError(f"{path}: camera {cams.names[i]!r} has a rotation that is not a proper rotation matrix")
    return cams


def _number(path: Path, entry: dict, key: str, where: str) -> float:
    if key not in entry:
        raise CameraFileError(f"{path}: {where} has no '{key}'")
    try:
        return float(entry[key])
    except (TypeError, ValueError):
        raise CameraFileError(f"{path}: {where} '{key}' is not a number: {entry[key]!r}") from None


def _matrix(path: Path, entry: dict, key: str, shape: tuple[int, ...], where: str) -> Tensor:
    if key not in entry:
        raise CameraFileError(f"{path}: {where} has no '{key}'")
    try:
        value = torch.tensor(entry[key], dtype=torch.float64)
    except (TypeError, ValueError):
        raise CameraFileError(f"{path}: {where} '{key}' is not a {shape} array of numbers") from None
    if tuple(value.shape) != shape:
        raise CameraFileError(f"{path}: {where} '{key}' has shape {tuple(value.shape)}; expected {shape}")
    return value


def _pinhole(fx: float, fy: float, cx: float, cy: float) -> Tensor:
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _world_to_camera(c2w_rotation: Tensor, center: Tensor) -> Tensor:
    """[4, 4] world-to-camera from a camera-to-world rotation [3, 3] (OpenCV axes) and the camera centre [3]."""
    view = torch.eye(4, dtype=torch.float64)
    view[:3, :3] = c2w_rotation.T
    view[:3, 3] = -c2w_rotation.T @ center
    return view


def _read_inria(path: Path, data: list) -> CameraSet:
    views, Ks, widths, heights, names = [], [], [], [], []
    for i, entry in enumerate(data):
        where = f"camera {i}"
        if not isinstance(entry, dict):
            raise CameraFileError(f"{path}: {where} is not an object")
        w, h = _number(path, entry, "width", where), _number(path, entry, "height", where)
        fx, fy = _number(path, entry, "fx", where), _number(path, entry, "fy", where)
        rotation = _matrix(path, entry, "rotation", (3, 3), where)  # camera-to-world, OpenCV
        center = _matrix(path, entry, "position", (3,), where)
        views.append(_world_to_camera(rotation, center))
        Ks.append(_pinhole(fx, fy, w / 2, h / 2))
        widths.append(w), heights.append(h)
        names.append(str(entry.get("img_name", entry.get("id", i))))
    return _stack(path, views, Ks, widths, heights, names)


def _read_nerfstudio(path: Path, data: dict) -> CameraSet:
    frames = data["frames"]
    if not isinstance(frames, list):
        raise CameraFileError(f"{path}: 'frames' must be a list")
    views, Ks, widths, heights, names = [], [], [], [], []
    for i, frame in enumerate(frames):
        where = f"frame {i}"
        if not isinstance(frame, dict):
            raise CameraFileError(f"{path}: {where} is not an object")
        merged = {**data, **frame}  # per-frame intrinsics override the shared ones
        w, h = _number(path, merged, "w", where), _number(path, merged, "h", where)
        fx = _number(path, merged, "fl_x", where)
        fy = _number(path, merged, "fl_y", where) if "fl_y" in merged else fx
        cx = _number(path, merged, "cx", where) if "cx" in merged else w / 2
        cy = _number(path, merged, "cy", where) if "cy" in merged else h / 2
        c2w = _matrix(path, frame, "transform_matrix", (4, 4), where)
        if not torch.allclose(c2w[3], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64)):
            raise CameraFileError(f"{path}: {where} 'transform_matrix' last row must be 0 0 0 1")
        views.append(_world_to_camera(c2w[:3, :3] @ GL_TO_CV, c2w[:3, 3]))
        Ks.append(_pinhole(fx, fy, cx, cy))
        widths.append(w), heights.append(h)
        names.append(str(frame.get("file_path", i)))
    return _stack(path, views, Ks, widths, heights, names)


def _stack(path, views, Ks, widths, heights, names) -> CameraSet:
    if not views:
        return CameraSet(torch.zeros(0, 4, 4, dtype=torch.float64), torch.zeros(0, 3, 3, dtype=torch.float64),
                         torch.zeros(0), torch.zeros(0), [], path)
    return CameraSet(torch.stack(views), torch.stack(Ks), torch.tensor(widths), torch.tensor(heights), names, path)


def check_cameras_see(cams: CameraSet, center: Tensor) -> None:
    """Raise CameraFileError unless at least one camera has `center` [3] in front of it and inside its image:
    cameras in another coordinate frame than the scene would otherwise train on empty views."""
    cam = (cams.viewmats[:, :3, :3] @ center.to(torch.float64)) + cams.viewmats[:, :3, 3]  # [C, 3]
    uv = (cams.Ks @ cam[..., None])[..., 0]  # [C, 3]
    in_front = cam[:, 2] > 0
    u, v = uv[:, 0] / uv[:, 2].clamp_min(1e-12), uv[:, 1] / uv[:, 2].clamp_min(1e-12)
    inside = in_front & (u >= 0) & (u <= cams.widths) & (v >= 0) & (v <= cams.heights)
    if not bool(inside.any()):
        raise CameraFileError(
            f"{cams.source}: none of its {len(cams)} cameras sees the scene's centre; are the cameras in the same "
            "coordinate frame (and up axis) as the .ply?")


class CameraSetSampler:
    """Random training views drawn from a `CameraSet` (same interface as `OrbitSampler`): uniform over the cameras,
    `size`² renders (centred square crops at each camera's vertical field of view)."""

    def __init__(self, cams: CameraSet, size: int):
        self.cams, self.size = cams, size

    def sample(self, batch_size: int, iteration: int, generator: torch.Generator, device=None) -> CameraBatch:
        index = torch.randint(len(self.cams), (batch_size,), generator=generator)  # [B]
        batch = self.cams.batch(index, self.size)
        return batch if device is None else batch.to(device)

