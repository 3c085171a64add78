"""Posed people for the toy world: the built-in body in random poses, in the toy palette, with their renders and
their OpenPose condition images (the training data of the toy pose ControlNet).

A person is the posed body (`lucidkit.body.pose`, normalised to the toy objects' size, in lucidkit's z-up world,
facing +x) covered with flat, nearly opaque Gaussian discs like the toy objects (`objects.py`): one colour of the
palette with the same baked light. Captions: "a red person" with the toy world's view suffixes and empty /
suffix-free shares (`captions.caption`'s rule). Cameras and backgrounds are the toy world's (`data.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from lucidkit.body.init import sample_surface
from lucidkit.body.pose import PosedBody, SmplxParams, pose_body, random_pose
from lucidkit.body.skeleton import skeleton_images
from lucidkit.cameras import CameraBatch
from lucidkit.toyworld.captions import P_EMPTY, P_NO_VIEW, view_of_azimuth, with_view
from lucidkit.toyworld.data import RESOLUTION, render_splats, sample_cameras
from lucidkit.toyworld.objects import COLOURS, OPACITY, SH_C0, _quats_from_normals, _shade

N_DISCS = 5000  # Gaussians per person: dense enough for 64 px renders, cheap on the CPU rasteriser
DISC_SIGMA = 0.009  # disc standard deviation in the surface (normalised units); thickness is 15% of it
COLOUR_NAMES = tuple(COLOURS)


def person_prompt(colour: str) -> str:
    """"a red person" (an "an" before a vowel: "an orange person")."""
    return ("an " if colour[0] in "aeiou" else "a ") + f"{colour} person"


def person_caption(colour: str, azimuth_deg: float, u: float) -> str:
    """The training caption of a person seen from `azimuth_deg`, by the toy world's rule (`captions.caption`)."""
    if u < P_EMPTY:
        return ""
    if u < P_EMPTY + P_NO_VIEW:
        return person_prompt(colour)
    return with_view(person_prompt(colour), view_of_azimuth(azimuth_deg))


def person_splats(body: PosedBody, colour: str, generator: torch.Generator, n: int = N_DISCS) -> dict[str, Tensor]:
    """Ground-truth Gaussians of a posed person in lucidkit's world: raw parameters in the engine's layout."""
    points, normals = sample_surface(body.world_vertices(), body.faces, n, generator)  # [n, 3] each
    rgb = _shade(torch.tensor(COLOURS[colour]).expand(n, 3).double(), normals.double()).float()  # [n, 3]
    log_scales = torch.log(torch.tensor([DISC_SIGMA, DISC_SIGMA, 0.15 * DISC_SIGMA])).expand(n, 3)
    return {
        "means": points.float().contiguous(),
        "scales": log_scales.contiguous(),
        "quats": _quats_from_normals(normals.double()).float(),
        "opacities": torch.full((n,), math.log(OPACITY / (1 - OPACITY))),
        "sh0": ((rgb - 0.5) / SH_C0)[:, None, :].contiguous(),
        "shN": torch.zeros(n, 0, 3),
    }


@dataclass
class PeoplePool:
    """Pre-rendered views of posed people; colour premultiplied (rendered on black) like `data.Pool`."""

    premultiplied: Tensor  # [N, H, W, 3] uint8
    alpha: Tensor  # [N, H, W, 1] uint8
    condition: Tensor  # [N, H, W, 3] uint8, the OpenPose image of the same camera
    colour_index: Tensor  # [N] long, into COLOUR_NAMES
    pose_index: Tensor  # [N] long, which pose of the pool
    azimuth_deg: Tensor  # [N] float

    def __len__(self) -> int:
        return self.premultiplied.shape[0]

    def composite(self, index: Tensor, backgrounds: Tensor) -> Tensor:
        """[B, H, W, 3] float images of entries `index` [B] on `backgrounds` [B, 3]."""
        rgb = self.premultiplied[index].float() / 255.0
        alpha = self.alpha[index].float() / 255.0
        return (rgb + (1 - alpha) * backgrounds.to(rgb.device)[:, None, None, :]).clamp(0, 1)

    def to(self, device) -> "PeoplePool":
        return PeoplePool(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def render_person(
    body: PosedBody, colour: str, cameras: CameraBatch, generator: torch.Generator, backend: str = "torch",
    device: str | torch.device = "cpu", backgrounds: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """rgb [C, H, W, 3] (on `backgrounds`, default black = premultiplied), alpha [C, H, W, 1] and the OpenPose
    condition [C, H, W, 3] (float in [0, 1]) of a posed person seen by `cameras`."""
    splats = {k: v.to(device) for k, v in person_splats(body, colour, generator).items()}
    with torch.no_grad():
        rgb, alpha = render_splats(splats, cameras, backgrounds, backend=backend)
    mesh = [t.to(device) for t in (body.world_joints(), body.world_vertices(), body.faces, body.vertex_joint)]
    condition = skeleton_images(*mesh[:3], cameras, vertex_joint=mesh[3])
    return rgb.cpu(), alpha.cpu(), condition


def render_people(
    n_poses: int, views_per_pose: int, seed: int, resolution: int = RESOLUTION, device: str | torch.device = "cpu",
    backend: str = "torch", log=None,
) -> tuple[PeoplePool, list[SmplxParams]]:
    """A pool of `n_poses` random poses (`pose.random_pose`), each in a colour of the palette (cycled) and seen
    from `views_per_pose` random toy-world cameras. Deterministic for a seed (drawn on the CPU)."""
    generator = torch.Generator().manual_seed(seed)
    parts = {name: [] for name in PeoplePool.__dataclass_fields__}
    poses = []
    for i in range(n_poses):
        params = random_pose(generator)
        body = pose_body(params)
        colour = i % len(COLOUR_NAMES)
        cameras = sample_cameras(views_per_pose, generator, resolution)
        rgb, alpha, condition = render_person(body, COLOUR_NAMES[colour], cameras, generator, backend, device)
        parts["premultiplied"].append((rgb * 255).round().to(torch.uint8))
        parts["alpha"].append((alpha * 255).round().to(torch.uint8))
        parts["condition"].append((condition * 255).round().to(torch.uint8))
        parts["colour_index"].append(torch.full((views_per_pose,), colour, dtype=torch.long))
        parts["pose_index"].append(torch.full((views_per_pose,), i, dtype=torch.long))
        parts["azimuth_deg"].append(cameras.azimuth_deg.float())
        poses.append(params)
        if log is not None and (i + 1) % 25 == 0:
            log(f"rendered {i + 1}/{n_poses} poses")
    return PeoplePool(**{k: torch.cat(v) for k, v in parts.items()}), poses
