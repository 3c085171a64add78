"""The subject photos: found, opened (EXIF orientation honoured), checked, and fitted to the prior's square
canvas, with their prompts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lucidkit.errors import UserError
from lucidkit.images import IMAGE_SUFFIXES
from lucidkit.lora.config import DataConfig


class BadImageError(UserError):
    """A subject photo that cannot be used (unreadable, corrupt, too small)."""


@dataclass
class SubjectImages:
    """The photos a LoRA learns from, ready for the VAE."""

    images: torch.Tensor  # [N, 3, R, R] float in [0, 1]
    prompts: list[str]  # [N] the instance prompt, or the photo's own caption (name.txt)
    files: list[str]  # [N] file names
    skipped: list[str]  # one message per photo that was skipped (data.skip_bad_images)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def find_images(folder: str | os.PathLike) -> list[Path]:
    """The image files (jpg/png/webp, not hidden) directly in `folder`, sorted by name."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise UserError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass a folder of subject photos (jpg/png/webp)")
    files = _image_files(folder)
    if not files:
        raise UserError(f"image folder {folder} holds no images (expected .jpg, .jpeg, .png or .webp files)")
    return files


def read_image(path: Path):
    """Open a photo as an upright RGB PIL image (`lucidkit.images.open_image`); BadImageError names a bad file."""
    from lucidkit.images import ImageError, open_image

    try:
        return open_image(path)
    except ImageError as err:
        raise BadImageError(str(err)) from None


def fit_image(img, resolution: int, crop: str) -> torch.Tensor:
    """[3, R, R] float in [0, 1]: 'center' scales the short side to R and keeps the middle; 'pad' scales the long
    side to R and pads the rest with white."""
    import numpy as np
    from PIL import Image

    w, h = img.size
    scale = resolution / (min(w, h) if crop == "center" else max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = img.resize(size, Image.Resampling.LANCZOS)
    if crop == "center":
        left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        img = img.crop((left, top, left + resolution, top + resolution))
    else:
        canvas = Image.new("RGB", (resolution, resolution), (255, 255, 255))
        canvas.paste(img, ((resolution - size[0]) // 2, (resolution - size[1]) // 2))
        img = canvas
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)  # [3, R, R]


def read_subject(folder: str | os.PathLike, skip_bad: bool) -> tuple[list[tuple[Path, object]], list[str]]:
    """Open every photo of `folder` (before any model loads, so bad files fail fast).

    Returns ([(path, RGB image)], skipped messages). A bad photo raises BadImageError, or with `skip_bad` is
    skipped and named; a folder left without usable photos is an error either way.
    """
    opened, skipped = [], []
    for path in find_images(folder):
        try:
            opened.append((path, read_image(path)))
        except BadImageError as err:
            if not skip_bad:
                raise BadImageError(f"{err}; remove it or pass --skip-bad-images") from None
            skipped.append(str(err))
    if not opened:
        raise UserError(f"image folder {folder} has no usable images ({len(skipped)} skipped: {skipped[0]})")
    return opened, skipped


def prepare_subject(opened: list, skipped: list[str], data: DataConfig, resolution: int,
                    prompt: str) -> SubjectImages:
    """Check sizes, crop/pad to `resolution` and pair each photo with its prompt (its name.txt caption if any)."""
    min_size = data.min_size or resolution // 2
    images, prompts, files, skipped = [], [], [], list(skipped)
    for path, img in opened:
        if min(img.size) < min_size:
            message = (f"image {path} is {img.size[0]}x{img.size[1]} pixels, smaller than the {min_size} pixels "
                       f"a side needs for {resolution}-pixel training (data.min_size)")
            if not data.skip_bad_images:
                raise BadImageError(f"{message}; use a larger photo or pass --skip-bad-images")
            skipped.append(message)
            continue
        caption = path.with_suffix(".txt")
        text = caption.read_text(encoding="utf-8", errors="replace").strip() if caption.is_file() else ""
        images.append(fit_image(img, resolution, data.crop))
        prompts.append(" ".join(text.split()) or prompt)
        files.append(path.name)
    if not images:
        raise BadImageError(f"no usable images left ({len(skipped)} skipped: {skipped[0]})")
    return SubjectImages(torch.stack(images), prompts, files, skipped)


def load_subject(folder: str | os.PathLike, data: DataConfig, resolution: int, prompt: str) -> SubjectImages:
    """`read_subject` then `prepare_subject`: the photos of `folder` as [N, 3, R, R] with their prompts."""
    opened, skipped = read_subject(folder, data.skip_bad_images)
    return prepare_subject(opened, skipped, data, resolution, prompt)
