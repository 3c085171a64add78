"""Rendering the toy world: cameras, backgrounds, ground-truth renders and the training pool.

Renders use lucidkit's own rasteriser (`lucidkit.splat.render`) and cameras from `lucidkit.cameras.OrbitSampler`
with the default `CameraConfig`, i.e. the distribution `generate` samples. Training images get the recipe's
backgrounds: white, replaced with probability 0.66 by a random solid colour (half of those) or black (the other
half). Images are float in [0, 1], ``[B, H, W, 3]`` channels-last, as the renderer returns them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from lucidkit.cameras import CameraBatch, CameraConfig, OrbitSampler
from lucidkit.splat.render import render
from lucidkit.toyworld.objects import ToyObject, activated, build

RESOLUTION = 64  # pixels, the toy prior's image size
P_NOT_WHITE = 0.66  # probability that a training background is not white (recipe)
WIDENED_FRACTION = 0.3  # share of training cameras drawn at a random later iteration (widened ranges)


def random_backgrounds(n: int, generator: torch.Generator) -> Tensor:
    """[n, 3] recipe backgrounds: white; with p = 0.66 a uniform random colour (half) or black (half)."""
    u = torch.rand(n, generator=generator)  # [n]
    colour = torch.rand(n, 3, generator=generator)  # [n, 3]
    white = torch.ones(n, 3)
    black = torch.zeros(n, 3)
    backgrounds = torch.where((u < P_NOT_WHITE / 2)[:, None], colour, white)
    return torch.where(((u >= P_NOT_WHITE / 2) & (u < P_NOT_WHITE))[:, None], black, backgrounds)


def sample_cameras(
    n: int, generator: torch.Generator, resolution: int = RESOLUTION, widened_fraction: float = WIDENED_FRACTION
) -> CameraBatch:
    """``n`` random orbit cameras of the default recipe. A ``widened_fraction`` share comes from a random
    iteration of the widening schedule (closer, narrower cameras), the rest from iteration 0."""
    cfg = CameraConfig()
    sampler = OrbitSampler(cfg, resolution, resolution)
    # The schedule widens stepwise, so a random iteration is one of a few levels: draw how many cameras each gets.
    levels = [level * cfg.widen_every for level in range(cfg.widen_until // cfg.widen_every + 1)]
    wide = torch.rand(n, generator=generator) < widened_fraction  # [n]
    level_of = torch.randint(0, len(levels), (n,), generator=generator)  # [n]
    counts = [int((~wide).sum())] + [int((wide & (level_of == k)).sum()) for k in range(len(levels))]
    iterations = [0] + levels
    batches = [sampler.sample(c, it, generator) for c, it in zip(counts, iterations) if c > 0]
    return _cat_cameras(batches)


def _cat_cameras(batches: list[CameraBatch]) -> CameraBatch:
    first = batches[0]
    return CameraBatch(
        viewmats=torch.cat([b.viewmats for b in batches]),
        Ks=torch.cat([b.Ks for b in batches]),
        width=first.width,
        height=first.height,
        azimuth_deg=torch.cat([b.azimuth_deg for b in batches]),
        polar_deg=torch.cat([b.polar_deg for b in batches]),
        radius=torch.cat([b.radius for b in batches]),
        fovy_rad=torch.cat([b.fovy_rad for b in batches]),
    )


def render_splats(
    splats: dict[str, Tensor], cameras: CameraBatch, backgrounds: Optional[Tensor] = None, backend: str = "auto"
) -> tuple[Tensor, Tensor]:
    """Render raw Gaussian parameters (engine layout) into ``cameras``.

    Returns rgb ``[C, H, W, 3]`` composited on ``backgrounds`` ``[C, 3]`` (None = black, i.e. premultiplied colour)
    and alpha ``[C, H, W, 1]``.
    """
    g = activated(splats)
    device = g["means"].device
    out = render(
        g["means"], g["quats"], g["scales"], g["opacities"], g["colors"],
        cameras.viewmats.to(device), cameras.Ks.to(device), cameras.width, cameras.height,
        backgrounds=None if backgrounds is None else backgrounds.to(device), backend=backend,
    )
    return out.rgb.clamp(0, 1), out.alpha.clamp(0, 1)


def render_object(
    obj: ToyObject, cameras: CameraBatch, backgrounds: Optional[Tensor] = None, device: str | torch.device = "cpu"
) -> Tensor:
    """[C, H, W, 3] ground-truth renders of ``obj``; ``backgrounds`` [C, 3] default to white (the test background)."""
    if backgrounds is None:
        backgrounds = torch.ones(len(cameras), 3)
    splats = {k: v.to(device) for k, v in build(obj).items()}
    rgb, _ = render_splats(splats, cameras, backgrounds)
    return rgb


def render_ground_truth(prompt: str, cameras: CameraBatch, backgrounds: Optional[Tensor] = None) -> Tensor:
    """[C, H, W, 3] renders of the ground truth of a toy prompt ("a red cube, back view") on white backgrounds."""
    from lucidkit.toyworld.captions import object_of_prompt

    return render_object(object_of_prompt(prompt), cameras, backgrounds)


@dataclass
class Pool:
    """Pre-rendered training views. Colour is premultiplied (rendered on black); composite with `composite`."""

    premultiplied: Tensor  # [N, H, W, 3] uint8
    alpha: Tensor  # [N, H, W, 1] uint8
    object_index: Tensor  # [N] long, index into the object list the pool was rendered from
    azimuth_deg: Tensor  # [N] float, camera azimuth, [-180, 180)
    polar_deg: Tensor  # [N] float

    def __len__(self) -> int:
        return self.premultiplied.shape[0]

    def composite(self, index: Tensor, backgrounds: Tensor) -> Tensor:
        """[B, H, W, 3] float images of pool entries ``index`` [B] on ``backgrounds`` [B, 3]."""
        rgb = self.premultiplied[index].float() / 255.0  # [B, H, W, 3]
        alpha = self.alpha[index].float() / 255.0  # [B, H, W, 1]
        return (rgb + (1 - alpha) * backgrounds.to(rgb.device)[:, None, None, :]).clamp(0, 1)

    def to(self, device) -> "Pool":
        return Pool(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def render_pool(
    objects: list[ToyObject],
    views_per_object: int | Sequence[int],
    seed: int,
    device: str | torch.device = "cpu",
    chunk: int = 256,
    resolution: int = RESOLUTION,
    log=None,
    backend: str = "torch",
) -> Pool:
    """Render ``views_per_object`` random views of every object (one count for all, or one per object; cameras
    drawn on the CPU from ``seed``, so the pool does not depend on the device). Chunks of ``chunk`` views are
    rendered at once. The default backend is the pure-torch rasteriser on any device (no CUDA compile step);
    "auto" picks gsplat on CUDA."""
    generator = torch.Generator().manual_seed(seed)
    if isinstance(views_per_object, int):
        views_per_object = [views_per_object] * len(objects)
    parts = {"premultiplied": [], "alpha": [], "object_index": [], "azimuth_deg": [], "polar_deg": []}
    for i, (obj, n_views) in enumerate(zip(objects, views_per_object)):
        splats = {k: v.to(device) for k, v in build(obj).items()}
        cameras = sample_cameras(n_views, generator, resolution)
        for start in range(0, n_views, chunk):
            cams = cameras[start : start + chunk]
            with torch.no_grad():
                rgb, alpha = render_splats(splats, cams, backend=backend)  # rgb premultiplied (black background)
            parts["premultiplied"].append((rgb * 255).round().to(torch.uint8))
            parts["alpha"].append((alpha * 255).round().to(torch.uint8))
        parts["object_index"].append(torch.full((n_views,), i, dtype=torch.long))
        parts["azimuth_deg"].append(cameras.azimuth_deg)
        parts["polar_deg"].append(cameras.polar_deg)
        if log is not None and (i + 1) % 10 == 0:
            log(f"rendered {i + 1}/{len(objects)} objects")
    return Pool(**{k: torch.cat([t.to(device) for t in v]) for k, v in parts.items()})


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's global generators (CPU and CUDA)."""
    random.seed(seed)
    torch.manual_seed(seed)
