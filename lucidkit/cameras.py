"""Cameras: look-at maths, intrinsics, the recipe's random orbit sampler, eval rings and the turntable path.

World conventions (docs/engine.md): z is up; objects face +x, so the camera at azimuth 0 sits on the +x axis and sees
the front. Azimuth is counter-clockwise seen from above (+x toward +y), in degrees, wrapped to [-180, 180). Polar
angle is measured from +z in degrees (90 = on the horizon, 45 = looking down from above).

Cameras are OpenCV/gsplat style: ``viewmats`` are world-to-camera ``[C, 4, 4]`` with camera x right, y down, z
forward, ``Ks`` pixel intrinsics ``[C, 3, 3]`` with square pixels and the principal point at the image centre.
Seen from azimuth 0 (standing on +x, looking toward -x, z up), world +y is on the image's right side (larger pixel
column) and world +z is at the top (smaller pixel row).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch
from torch import Tensor

from lucidkit.devices import to_device


@dataclass
class CameraBatch:
    """C cameras of one image size, with the orbit parameters they were made from."""

    viewmats: Tensor  # [C, 4, 4] world-to-camera (OpenCV)
    Ks: Tensor  # [C, 3, 3] pixel intrinsics
    width: int
    height: int
    azimuth_deg: Tensor  # [C] in [-180, 180), 0 = front (+x)
    polar_deg: Tensor  # [C] from +z
    radius: Tensor  # [C] distance from the orbit centre, world units
    fovy_rad: Tensor  # [C] vertical field of view, radians

    def __len__(self) -> int:
        return self.viewmats.shape[0]

    def to(self, device: torch.device | str) -> "CameraBatch":
        """The same cameras with every tensor on ``device``."""
        moved = {name: to_device(getattr(self, name), device) for name in _TENSOR_FIELDS}
        return replace(self, **moved)

    def camera_centers(self) -> Tensor:
        """[C, 3] camera positions in world coordinates."""
        rot = self.viewmats[:, :3, :3]  # [C, 3, 3]
        return -(rot.transpose(1, 2) @ self.viewmats[:, :3, 3:4])[..., 0]  # [C, 3]

    def __getitem__(self, index) -> "CameraBatch":
        """A sub-batch (index by int, slice or index tensor); an int keeps the batch dimension."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        picked = {name: getattr(self, name)[index] for name in _TENSOR_FIELDS}
        return replace(self, **picked)


_TENSOR_FIELDS = ("viewmats", "Ks", "azimuth_deg", "polar_deg", "radius", "fovy_rad")


@dataclass
class CameraConfig:
    """Random orbit cameras of the recipe (LucidDreamer release), with progressive widening."""

    radius_range: tuple[float, float] = (5.2, 5.5)
    """Camera distance from the centre at the start, world units (min, max)."""
    fovy_range_rad: tuple[float, float] = (0.32, 0.60)
    """Vertical field of view at the start, radians (min, max)."""
    polar_range_deg: tuple[float, float] = (45.0, 105.0)
    """Polar angle from +z, degrees (90 = horizon, smaller = from above)."""
    azimuth_range_deg: tuple[float, float] = (-180.0, 180.0)
    """Azimuth, degrees counter-clockwise from +x (0 = the object's front)."""
    azimuth_spread: bool = False
    """Spread each batch's azimuths evenly over the range from one random start (threestudio's
    `batch_uniform_azimuth`): every update then sees the object from all sides at once (front, side, back for a
    batch of 4) instead of B independent draws that may all face one way."""
    jitter_center: float = 0.05
    """Camera position jitter: uniform in [-j/2, j/2] per axis, world units."""
    jitter_target: float = 0.05
    """Look-at target jitter: normal with this standard deviation per axis, world units."""
    jitter_up: float = 0.02
    """Up-vector jitter: normal with this standard deviation per axis."""
    final_radius_range: tuple[float, float] = (3.5, 5.0)
    """Camera distance range reached at the end of widening, world units."""
    final_fovy_range_rad: tuple[float, float] = (0.16, 0.60)
    """Field-of-view range reached at the end of widening, radians."""
    widen_every: int = 500
    """Widen the radius and fov ranges in steps every this many iterations."""
    widen_until: int = 2500
    """Iteration at which the final ranges are reached."""
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Orbit centre (look-at target before jitter), world units."""
    eval_radius: float = 3.5
    """Distance of eval and turntable cameras, world units."""
    eval_fovy_rad: float = 0.55
    """Vertical field of view of eval and turntable cameras, radians."""
    eval_polar_deg: tuple[float, ...] = (90.0, 60.0)
    """Polar angles of the eval rings, degrees."""


def widen_fraction(cfg: CameraConfig, iteration: int) -> float:
    """How far (0..1) the radius/fov ranges have moved toward their final values at ``iteration`` (stepwise)."""
    if cfg.widen_until <= 0:
        return 1.0
    every = max(int(cfg.widen_every), 1)
    return min(1.0, (iteration // every) * every / cfg.widen_until)


def ranges_at(cfg: CameraConfig, iteration: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(radius_range, fovy_range_rad) in force at ``iteration``."""
    f = widen_fraction(cfg, iteration)

    def lerp(start, final):
        return (start[0] + f * (final[0] - start[0]), start[1] + f * (final[1] - start[1]))

    return lerp(cfg.radius_range, cfg.final_radius_range), lerp(cfg.fovy_range_rad, cfg.final_fovy_range_rad)


def scaled(cfg: CameraConfig, scale: float, center: Sequence[float]) -> CameraConfig:
    """The same camera recipe fitted to a scene ``scale`` times the default size, orbiting ``center``.

    Distances and jitters are multiplied by ``scale``; angles and fields of view stay, so the object fills the
    frame the same way.
    """

    def mul(pair):
        return (pair[0] * scale, pair[1] * scale)

    return replace(
        cfg,
        radius_range=mul(cfg.radius_range),
        final_radius_range=mul(cfg.final_radius_range),
        jitter_center=cfg.jitter_center * scale,
        jitter_target=cfg.jitter_target * scale,
        eval_radius=cfg.eval_radius * scale,
        center=tuple(float(c) for c in center),
    )


def look_at(eye: Tensor, target: Tensor, up: Tensor) -> Tensor:
    """World-to-camera OpenCV matrices [C, 4, 4] for cameras at ``eye`` [C, 3] looking at ``target`` [C, 3].

    ``up`` [C, 3] is the world direction that should point up in the image (camera -y).
    """
    forward = torch.nn.functional.normalize(target - eye, dim=-1)  # [C, 3] camera +z
    right = torch.nn.functional.normalize(torch.cross(forward, up, dim=-1), dim=-1)  # [C, 3] camera +x
    down = torch.cross(forward, right, dim=-1)  # [C, 3] camera +y
    rot = torch.stack([right, down, forward], dim=1)  # [C, 3, 3] rows = camera axes in world coordinates
    viewmats = torch.zeros(eye.shape[0], 4, 4, dtype=eye.dtype, device=eye.device)
    viewmats[:, :3, :3] = rot
    viewmats[:, :3, 3] = -(rot @ eye[..., None])[..., 0]
    viewmats[:, 3, 3] = 1.0
    return viewmats


def intrinsics(fovy_rad: Tensor, width: int, height: int) -> Tensor:
    """Pixel intrinsics [C, 3, 3] for vertical fields of view ``fovy_rad`` [C]; square pixels, centred."""
    focal = 0.5 * height / torch.tan(0.5 * fovy_rad)  # [C] pixels
    Ks = torch.zeros(fovy_rad.shape[0], 3, 3, dtype=fovy_rad.dtype, device=fovy_rad.device)
    Ks[:, 0, 0] = focal
    Ks[:, 1, 1] = focal
    Ks[:, 0, 2] = 0.5 * width
    Ks[:, 1, 2] = 0.5 * height
    Ks[:, 2, 2] = 1.0
    return Ks


def orbit_position(azimuth_deg: Tensor, polar_deg: Tensor, radius: Tensor) -> Tensor:
    """[C, 3] points on the orbit sphere (relative to its centre) for angles in degrees."""
    az, po = torch.deg2rad(azimuth_deg), torch.deg2rad(polar_deg)
    return torch.stack(
        [radius * torch.sin(po) * torch.cos(az), radius * torch.sin(po) * torch.sin(az), radius * torch.cos(po)],
        dim=-1,
    )


def wrap_degrees(angle_deg: Tensor) -> Tensor:
    """Angles wrapped to [-180, 180)."""
    return torch.remainder(angle_deg + 180.0, 360.0) - 180.0


def orbit_cameras(
    azimuth_deg: Tensor,  # [C]
    polar_deg: Tensor,  # [C]
    radius: Tensor,  # [C]
    fovy_rad: Tensor,  # [C]
    width: int,
    height: int,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    eye_offset: Optional[Tensor] = None,  # [C, 3] jitter added to the camera position
    target_offset: Optional[Tensor] = None,  # [C, 3] jitter added to the look-at target
    up_offset: Optional[Tensor] = None,  # [C, 3] jitter added to the up vector (+z)
) -> CameraBatch:
    """Cameras on an orbit around ``center`` looking at it (plus optional jitter)."""
    centre = torch.tensor(center, dtype=radius.dtype, device=radius.device).expand(radius.shape[0], 3)  # [C, 3]
    eye = centre + orbit_position(azimuth_deg, polar_deg, radius)  # [C, 3]
    target = centre.clone()
    up = torch.zeros_like(eye)
    up[:, 2] = 1.0
    if eye_offset is not None:
        eye = eye + eye_offset
    if target_offset is not None:
        target = target + target_offset
    if up_offset is not None:
        up = up + up_offset
    return CameraBatch(
        viewmats=look_at(eye, target, up),
        Ks=intrinsics(fovy_rad, width, height),
        width=width,
        height=height,
        azimuth_deg=wrap_degrees(azimuth_deg),
        polar_deg=polar_deg,
        radius=radius,
        fovy_rad=fovy_rad,
    )


class OrbitSampler:
    """Draws random training cameras from the recipe's ranges; the radius/fov ranges widen with the iteration."""

    def __init__(self, cfg: CameraConfig, width: int, height: int):
        self.cfg = cfg
        self.width = width
        self.height = height

    def sample(
        self,
        batch_size: int,
        iteration: int,
        generator: torch.Generator,
        device: torch.device | str | None = None,
    ) -> CameraBatch:
        """``batch_size`` cameras for training step ``iteration``; the same generator state gives the same cameras.

        Random numbers are drawn on the CPU (so results do not depend on the device) and moved to ``device``.
        """
        cfg = self.cfg
        radius_range, fovy_range = ranges_at(cfg, iteration)

        def uniform(lo_hi):
            lo, hi = lo_hi
            return lo + (hi - lo) * torch.rand(batch_size, generator=generator)

        radius = uniform(radius_range)  # [B]
        fovy = uniform(fovy_range)  # [B]
        polar = uniform(cfg.polar_range_deg)  # [B]
        azimuth = uniform(cfg.azimuth_range_deg)  # [B]
        if cfg.azimuth_spread:  # one random start, then evenly spaced (the draw above keeps the random stream)
            lo, hi = cfg.azimuth_range_deg
            start = (azimuth[:1] - lo) / (hi - lo)  # [1] in [0, 1)
            azimuth = lo + (hi - lo) * ((start + torch.arange(batch_size) / batch_size) % 1.0)  # [B]
        eye_offset = (torch.rand(batch_size, 3, generator=generator) - 0.5) * cfg.jitter_center  # [B, 3]
        target_offset = torch.randn(batch_size, 3, generator=generator) * cfg.jitter_target  # [B, 3]
        up_offset = torch.randn(batch_size, 3, generator=generator) * cfg.jitter_up  # [B, 3]
        cams = orbit_cameras(
            azimuth, polar, radius, fovy, self.width, self.height, cfg.center, eye_offset, target_offset, up_offset
        )
        return cams if device is None else cams.to(device)


def eval_ring(n: int, cfg: CameraConfig, width: int, height: int, polar_deg: float = 90.0) -> CameraBatch:
    """``n`` evenly spaced cameras around the object at the eval radius and fov, starting at the front (azimuth 0)."""
    azimuth = torch.arange(n, dtype=torch.float32) * (360.0 / n)  # [n]
    return orbit_cameras(
        azimuth,
        torch.full((n,), float(polar_deg)),
        torch.full((n,), float(cfg.eval_radius)),
        torch.full((n,), float(cfg.eval_fovy_rad)),
        width,
        height,
        cfg.center,
    )


def turntable(n_frames: int, cfg: CameraConfig, width: int, height: int, polar_deg: float = 80.0) -> CameraBatch:
    """A full counter-clockwise orbit of ``n_frames`` cameras for the turntable video, starting at the front."""
    return eval_ring(n_frames, cfg, width, height, polar_deg=polar_deg)
