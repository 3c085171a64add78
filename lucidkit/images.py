"""Image files in and out of the prior's square canvas: reading user images safely, fitting them to the prior's
resolution and putting results back at the original size.

Images inside lucidkit are float tensors in [0, 1]: `[H, W, 3]` for one image here, `[B, 3, H, W]` for the VAE.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lucidkit.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")  # what photo folders are scanned for


class ImageError(UserError):
    """An image file the user gave cannot be used (missing, unreadable, wrong size)."""


def open_image(path: str | os.PathLike, what: str = "image"):
    """Open an image file as an upright RGB PIL image: EXIF orientation applied, transparency composited on white.

    Raises ImageError naming the file when it is missing, not an image, truncated or corrupt.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{what} {path} does not exist (expected a PNG, JPEG or WebP file)")
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, not later
            im = ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(f"{what} {path} is not a readable image: unreadable or corrupt ({e}); expected a PNG, "
                         "JPEG or WebP file") from None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.new("RGB", rgba.size, (255, 255, 255))
        im.paste(rgba, mask=rgba.getchannel("A"))
    return im.convert("RGB")


def read_image(path: str | os.PathLike, what: str = "image") -> torch.Tensor:
    """Read an image file → [H, W, 3] float32 in [0, 1] (see `open_image`)."""
    rgb = np.asarray(open_image(path, what), dtype=np.float32) / 255.0  # [H, W, 3]
    return torch.from_numpy(rgb.copy())


def read_mask(path: str | os.PathLike, size: tuple[int, int]) -> torch.Tensor:
    """A mask image → [H, W] bool (True = editable), which must have the image's `size` (H, W).

    White (or any bright pixel, luminance > 0.5) marks the region to edit; black keeps the input.
    """
    mask = read_image(path, what="mask")
    if tuple(mask.shape[:2]) != tuple(size):
        raise ImageError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} pixels but the image is "
                         f"{size[1]}x{size[0]}; the mask must have the image's size (white = edit, black = keep)")
    editable = mask.mean(dim=-1) > 0.5  # [H, W]
    if not editable.any():
        raise ImageError(f"mask {path} is all black: nothing may change; paint the region to edit in white")
    return editable


@dataclass(frozen=True)
class Placement:
    """Where an image of `height`×`width` sits on the square canvas of side `size` (after resize and pad)."""

    height: int
    width: int
    size: int
    top: int
    left: int
    inner_h: int
    inner_w: int


def place(height: int, width: int, size: int) -> Placement:
    """Resize so the longer side is `size`, keep the aspect, centre on the canvas."""
    scale = size / max(height, width)
    inner_h, inner_w = max(1, round(height * scale)), max(1, round(width * scale))
    return Placement(height, width, size, (size - inner_h) // 2, (size - inner_w) // 2, inner_h, inner_w)


def _resize(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[C, H, W] → [C, h, w]: area averaging when shrinking, bicubic when growing."""
    if (h, w) == tuple(img.shape[-2:]):
        return img
    shrinking = h <= img.shape[-2] and w <= img.shape[-1]
    mode = dict(mode="area") if shrinking else dict(mode="bicubic", align_corners=False)
    return F.interpolate(img[None], size=(h, w), **mode)[0].clamp(0, 1)


def to_canvas(img: torch.Tensor, p: Placement, fill: float = 1.0) -> torch.Tensor:
    """[H, W, C] at the original size → [C, size, size] on the canvas, padded with `fill`."""
    inner = _resize(img.permute(2, 0, 1).float(), p.inner_h, p.inner_w)  # [C, h, w]
    canvas = torch.full((img.shape[-1], p.size, p.size), fill, dtype=inner.dtype)
    canvas[:, p.top:p.top + p.inner_h, p.left:p.left + p.inner_w] = inner
    return canvas


def from_canvas(canvas: torch.Tensor, p: Placement) -> torch.Tensor:
    """[C, size, size] → [H, W, C] at the original size (the padding cropped away)."""
    inner = canvas[:, p.top:p.top + p.inner_h, p.left:p.left + p.inner_w]
    return _resize(inner.float(), p.height, p.width).permute(1, 2, 0)
