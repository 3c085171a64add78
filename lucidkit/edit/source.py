"""The input of an edit, read and checked before any model loads: the scene file, its frame, the editable region
and the cameras."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lucidkit.camera_files import CameraSet, check_cameras_see, read_camera_file
from lucidkit.edit.config import SceneConfig
from lucidkit.errors import UserError
from lucidkit.splat.ply import PlyError, PlyScene, read_ply
from lucidkit.splat.transform import SceneFrame


class RegionError(UserError):
    """A --region that cannot be parsed or selects nothing."""


@dataclass(frozen=True)
class Region:
    """A part of space in the file's coordinates: a box (lo, hi corners) or a sphere (centre, radius)."""

    kind: str  # "box" or "sphere"
    values: tuple[float, ...]  # box: x0, y0, z0, x1, y1, z1; sphere: x, y, z, r
    text: str

    def contains(self, points: Tensor) -> Tensor:
        """[N] bool: which of `points` [N, 3] lie inside (boundary included)."""
        v = torch.tensor(self.values, dtype=torch.float64)
        p = points.detach().to(torch.float64)
        if self.kind == "box":
            lo, hi = torch.minimum(v[:3], v[3:]), torch.maximum(v[:3], v[3:])
            return ((p >= lo) & (p <= hi)).all(dim=1)
        return (p - v[:3]).norm(dim=1) <= v[3]


def parse_region(text: str) -> Region:
    """'box:x0,y0,z0,x1,y1,z1' (any two opposite corners) or 'sphere:x,y,z,r' → Region; RegionError otherwise."""
    expected = "expected 'box:x0,y0,z0,x1,y1,z1' or 'sphere:x,y,z,r' (numbers in the .ply's coordinates)"
    match = re.fullmatch(r"\s*(box|sphere)\s*:(.*)", text or "")
    if match is None:
        raise RegionError(f"--region {text!r}: {expected}")
    kind, body = match.group(1), match.group(2)
    try:
        values = tuple(float(x) for x in body.split(","))
    except ValueError:
        raise RegionError(f"--region {text!r}: {expected}") from None
    if len(values) != (6 if kind == "box" else 4) or not all(map(lambda x: abs(x) < float("inf"), values)):
        raise RegionError(f"--region {text!r}: {expected}")
    if kind == "sphere" and values[3] <= 0:
        raise RegionError(f"--region {text!r}: the sphere's radius must be positive")
    return Region(kind, values, text.strip())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class EditSource:
    """The scene being edited, as read (file frame), with everything derived from it."""

    scene: PlyScene
    sha256: str
    frame: SceneFrame
    editable: Tensor  # [N] bool: inside the region (all True without one)
    region: Region | None
    cameras: CameraSet | None  # the given cameras in the engine frame, or None (an orbit)

    @property
    def frozen(self) -> Tensor | None:
        """[N] bool mask of the Gaussians that must not change, or None when all may."""
        return None if bool(self.editable.all()) else ~self.editable

    def engine_splats(self, device) -> dict[str, Tensor]:
        return {k: v.to(device) for k, v in self.frame.to_engine(self.scene.splats).items()}

    def file_splats(self, splats, anchor_index: Tensor, frozen: Tensor | None) -> tuple[dict, Tensor | None]:
        """(raw parameters in the file's frame, normals) for the edited Gaussians; frozen rows are the input's own
        values (bit-identical) and every row carries the normals of the input Gaussian it descends from."""
        out = self.frame.to_file(splats)
        index = anchor_index.cpu()
        if frozen is not None:
            rows = frozen.cpu()
            for name, values in self.scene.splats.items():
                out[name][rows] = values.detach()[index[rows]]
        normals = None if self.scene.normals is None else self.scene.normals[index]
        return out, normals


def load_source(cfg: SceneConfig) -> EditSource:
    """Read and check everything about the input before any model loads; raise UserError naming what is wrong."""
    region = parse_region(cfg.region) if cfg.region else None  # a syntax error costs nothing
    if not cfg.path:
        raise UserError("no scene to edit: pass the .ply file, e.g. lucidkit edit scene.ply --prompt \"...\"")
    path = Path(cfg.path)
    scene = read_ply(path)  # PlyError: not a ply, missing fields, NaN, truncated
    if scene.num_gaussians == 0:
        raise PlyError(f"{path}: holds no Gaussians (element vertex 0)")
    editable = torch.ones(scene.num_gaussians, dtype=torch.bool)
    if region is not None:
        editable = region.contains(scene.splats["means"])
        if not bool(editable.any()):
            means = scene.splats["means"].detach()
            lo, hi = means.min(dim=0).values.tolist(), means.max(dim=0).values.tolist()
            raise RegionError(
                f"--region {region.text} contains none of the {scene.num_gaussians} Gaussians of {path} "
                f"(they span {_fmt(lo)} to {_fmt(hi)} in the file's coordinates)")
    frame = SceneFrame.fit(scene.splats, cfg.up, cfg.fit_radius, cfg.bounds_percentile)
    cameras = None
    if cfg.cameras:
        cameras = read_camera_file(cfg.cameras).transformed(frame.rotation, frame.center, frame.scale)
        check_cameras_see(cameras, torch.zeros(3))
    return EditSource(scene, file_sha256(path), frame, editable, region, cameras)


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"
