"""What a run leaves for the user: turntable video, preview grid, config and manifest files.

Every writer here goes through `atomic_write` / `atomic_path`: the data is written to a temporary file in the
target's own folder, flushed to disk, then renamed over the target with `os.replace`. A crash or an exception
midway leaves the previous file (if any) untouched and no half-written file behind.

Images are numpy arrays (torch tensors are accepted and converted); this module imports no torch, so the CLI
can use `check_writable_dir` and the writers without paying for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import shutil
import tempfile
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from lucidkit.errors import UserError

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it over `path`, on an exception delete it.

    For writers that want a file name rather than a file object (ffmpeg, PIL). The temporary name keeps the
    target's suffix (`.scene.ply.tmp-1a2b3c4d.ply`) so writers that pick a format from the suffix still work.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the writer may have closed it without syncing
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[Any]:
    """Open a temporary file next to `path` for writing; on success fsync it and rename it over `path`.

    Use as `with atomic_write(p) as f: f.write(...)`. If the body raises, the temporary file is removed and
    an existing `path` keeps its old contents. `mode` is "wb" (default) or "w" (text, `encoding` default utf-8).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp:
        # "x": the temporary name is fresh; permissions follow the umask like any newly created file.
        with open(tmp, mode.replace("w", "x"), encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort; not all platforms allow opening a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create the folder `path` if needed and check that files can be written in it; return it as a Path.

    Raises UserError("cannot write to output folder ...") naming the folder and the reason. The check writes
    and deletes a small probe file, so it is true even for root (who ignores permission bits) — e.g. a folder
    under a regular file, a read-only file system, or a full disk all fail here, before a long run starts.
    """
    path = Path(path)
    for part in (path, *path.parents):  # name the file that stands where a folder is needed
        if part.exists() and not part.is_dir():
            raise UserError(f"cannot write to output folder {path}: {part} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".lucidkit-write-test-{uuid.uuid4().hex[:8]}"
        with open(probe, "xb") as f:
            f.write(b"ok")
        probe.unlink()
    except OSError as e:
        reason = e.strerror or str(e)
        if path.is_dir():  # it exists, so "No such file or directory" and the like would mislead
            reason = f"the folder exists but files cannot be created in it ({reason})"
        raise UserError(f"cannot write to output folder {path}: {reason}") from None
    return path


# ----------------------------------------------------------------------------------------------------------------
# Config and manifest files
# ----------------------------------------------------------------------------------------------------------------


def to_plain(obj: Any) -> Any:
    """Convert dataclasses, Paths, tuples, numpy/torch scalars and arrays to plain JSON/YAML types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return to_plain(obj.tolist())
    raise TypeError(f"cannot store a {type(obj).__name__} in a JSON/YAML file: {obj!r}")


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` (plain types, dataclasses, Paths, numpy values) as indented UTF-8 JSON, atomically."""
    text = json.dumps(to_plain(obj), indent=2, ensure_ascii=False, allow_nan=True) + "\n"
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as block-style YAML (keys in insertion order), atomically."""
    import yaml

    text = yaml.safe_dump(to_plain(obj), sort_keys=False, default_flow_style=False, allow_unicode=True)
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that decide a run's result (None where one is not installed), for manifests.

    Read from package metadata, so nothing heavy is imported.
    """
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("lucidkit", "torch", "diffusers", "transformers", "peft", "gsplat"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# ----------------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------------


def _to_numpy(x: Any) -> np.ndarray:
    """numpy view of a numpy array or a (possibly CUDA, possibly grad-carrying) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def to_uint8(img: Any) -> np.ndarray:
    """Float images in [0, 1] -> uint8 (rounded, clipped); uint8 images pass through unchanged."""
    img = _to_numpy(img)
    if img.dtype == np.uint8:
        return img
    return (np.clip(np.nan_to_num(img.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(path: str | os.PathLike, img: Any) -> Path:
    """Write an image `[H, W, 3]` (or `[H, W, 4]`, `[H, W, 1]`, `[H, W]`), uint8 or float in [0, 1], as PNG."""
    from PIL import Image

    img = to_uint8(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] not in (3, 4)):
        raise ValueError(f"write_png expects [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got {img.shape}")
    with atomic_write(path) as f:
        Image.fromarray(img).save(f, format="PNG")
    return Path(path)


# Viridis sampled at 9 evenly spaced points; np.interp between them is close enough for a preview.
_VIRIDIS = np.array(
    [
        [0.267, 0.005, 0.329],
        [0.278, 0.175, 0.483],
        [0.229, 0.322, 0.546],
        [0.173, 0.449, 0.558],
        [0.128, 0.567, 0.551],
        [0.153, 0.680, 0.504],
        [0.361, 0.786, 0.388],
        [0.678, 0.864, 0.190],
        [0.993, 0.906, 0.144],
    ],
    dtype=np.float32,
)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to viridis RGB floats in [0, 1], shape `[..., 3]`."""
    values = np.clip(np.nan_to_num(values), 0.0, 1.0)
    stops = np.linspace(0.0, 1.0, len(_VIRIDIS))
    return np.stack([np.interp(values, stops, _VIRIDIS[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def depth_to_rgb(
    depth: np.ndarray, alpha: np.ndarray | None = None, background: float = 1.0, alpha_threshold: float = 0.5
) -> np.ndarray:
    """Colour-map depth `[V, H, W, 1]` into `[V, H, W, 3]` floats: near is yellow, far is purple.

    The range is shared by all views (so they compare) and taken over foreground pixels only: those with
    `alpha > alpha_threshold`, or, without alpha, those with finite positive depth. Background pixels get the
    grey level `background`.
    """
    depth = _to_numpy(depth).astype(np.float32)[..., 0]  # [V, H, W]
    if alpha is not None:
        mask = _to_numpy(alpha).astype(np.float32)[..., 0] > alpha_threshold  # [V, H, W]
    else:
        mask = np.isfinite(depth) & (depth > 0)
    out = np.full(depth.shape + (3,), background, dtype=np.float32)  # [V, H, W, 3]
    if mask.any():
        near, far = float(depth[mask].min()), float(depth[mask].max())
        near_is_1 = (far - depth[mask]) / max(far - near, 1e-8)  # 1 at the nearest foreground pixel
        out[mask] = colormap(near_is_1)
    return out


def _tile(images: np.ndarray, cols: int) -> np.ndarray:
    """Tile `[V, H, W, 3]` into rows of `cols` images, `[ceil(V/cols)*H, cols*W, 3]`; empty cells are white."""
    v, h, w, c = images.shape
    rows = -(-v // cols)
    padded = np.ones((rows * cols, h, w, c), dtype=images.dtype)
    padded[:v] = images
    return padded.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def preview_grid(rgb: Any, depth: Any = None, alpha: Any = None, max_cols: int = 8) -> np.ndarray:
    """One uint8 image of eval views: RGB views in rows of at most `max_cols`, then the depth views below.

    Args:
        rgb: `[V, H, W, 3]` float in [0, 1] (or uint8).
        depth: `[V, H, W, 1]` expected depth in world units, or None for no depth rows.
        alpha: `[V, H, W, 1]` in [0, 1], or None; masks the depth background (see `depth_to_rgb`).
        max_cols: views per row.

    Returns `[R*H, C*W, 3]` uint8 with C = min(V, max_cols) and R = 2*ceil(V/C) with depth, ceil(V/C) without.
    """
    rgb_u8 = to_uint8(rgb)
    if rgb_u8.ndim != 4 or rgb_u8.shape[-1] != 3:
        raise ValueError(f"preview_grid expects rgb [V, H, W, 3], got {rgb_u8.shape}")
    cols = max(1, min(rgb_u8.shape[0], max_cols))
    parts = [_tile(rgb_u8.astype(np.float32) / 255.0, cols)]
    if depth is not None:
        depth_np = _to_numpy(depth)
        if depth_np.shape != rgb_u8.shape[:3] + (1,):
            raise ValueError(f"preview_grid: depth {depth_np.shape} does not match rgb {rgb_u8.shape}")
        parts.append(_tile(depth_to_rgb(depth_np, alpha), cols))
    return to_uint8(np.concatenate(parts, axis=0))


# ----------------------------------------------------------------------------------------------------------------
# Video
# ----------------------------------------------------------------------------------------------------------------


def _find_ffmpeg() -> str | None:
    """Path of a usable ffmpeg executable (imageio-ffmpeg's bundled one, or IMAGEIO_FFMPEG_EXE), else None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # not installed, or no binary for this platform
        return None


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """Repeat the last row/column where H or W is odd: H.264 in yuv420p needs even sizes."""
    _, h, w, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 / yuv420p mp4 through imageio-ffmpeg's writer."""
    import imageio_ffmpeg

    frames = _pad_even(frames)
    _, h, w, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        quality=8,  # imageio's 0-10 scale; 8 is visually clean for previews
        macro_block_size=2,  # only evenness is needed; the default (16) would rescale the frames
        ffmpeg_log_level="error",
        output_params=["-movflags", "+faststart"],  # playable while still downloading
    )
    writer.send(None)  # start the generator (launches ffmpeg)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    """Looping GIF through Pillow (adaptive palette per frame)."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    duration_ms = max(20, int(round(1000.0 / fps)))  # browsers treat < 20 ms as 100 ms
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


def write_video(path: str | os.PathLike, frames: Any, fps: float = 30) -> Path:
    """Write frames `[T, H, W, 3]` (uint8, or float in [0, 1]) as an H.264 mp4 and return the written path.

    Odd sizes are padded by one edge pixel to even. If no working ffmpeg is found or encoding fails, writes
    a GIF next to it instead (same name, `.gif` suffix) and returns that path; a `path` ending in `.gif` asks
    for a GIF directly. The file is written atomically.
    """
    path = Path(path)
    frames = to_uint8(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"write_video expects frames [T, H, W, 3] with T > 0, got {frames.shape}")
    if path.suffix.lower() != ".gif":
        if _find_ffmpeg() is not None:
            try:
                with atomic_path(path) as tmp:
                    _write_mp4(tmp, frames, fps)
                return path
            except Exception as e:  # a broken ffmpeg build, a missing codec, ...
                log.warning("could not write %s with ffmpeg (%s); writing a GIF instead", path, e)
        else:
            log.warning("no ffmpeg found (install imageio-ffmpeg); writing a GIF instead of %s", path)
        path = path.with_suffix(".gif")
    with atomic_path(path) as tmp:
        _write_gif(tmp, frames, fps)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Folders written atomically: built under a temporary sibling name, then renamed into place.
# ---------------------------------------------------------------------------------------------------------------


def staging_folder(folder: str | Path) -> Path:
    """A fresh empty sibling of ``folder`` (same file system, so the final rename is atomic)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    tmp.chmod(0o755)
    return tmp


def publish(tmp: Path, folder: str | Path) -> Path:
    """Make ``tmp``'s files world-readable and move ``tmp`` to ``folder``, replacing what was there."""
    folder = Path(folder)
    for path in tmp.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
        os.replace(folder, old / folder.name)
        os.replace(tmp, folder)
        shutil.rmtree(old)
    else:
        os.replace(tmp, folder)
    return folder
