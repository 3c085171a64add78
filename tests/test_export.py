"""Files a user gets from a run: video, preview grid, JSON/YAML, and writes that never leave half a file."""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lucidkit import export
from lucidkit.errors import UserError
from lucidkit.export import (
    atomic_write,
    check_writable_dir,
    package_versions,
    preview_grid,
    write_json,
    write_png,
    write_video,
    write_yaml,
)


def frames(t: int = 12, h: int = 48, w: int = 64) -> np.ndarray:
    """A white square moving right on black: `[T, H, W, 3]` uint8."""
    out = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        out[i, h // 4 : h // 2, 2 * i : 2 * i + 8] = 255
    return out


def read_frames(path: Path) -> np.ndarray:
    import imageio.v2 as iio

    with iio.get_reader(str(path), "ffmpeg") as reader:
        return np.stack([frame for frame in reader])  # list(reader) trips on its len() of inf


def test_mp4_has_the_right_frames_and_size(tmp_path):
    path = write_video(tmp_path / "turntable.mp4", frames(), fps=24)
    assert path == tmp_path / "turntable.mp4"
    video = read_frames(path)
    assert video.shape == (12, 48, 64, 3)
    # H.264 is lossy but the moving square must be where it was drawn.
    assert video[5, 15, 12:16].mean() > 200 and video[5, 40, 40].mean() < 50
    assert [p.name for p in tmp_path.iterdir()] == ["turntable.mp4"]  # no temporary files left


def test_odd_sizes_are_padded_to_even(tmp_path):
    video = read_frames(write_video(tmp_path / "odd.mp4", frames(h=33, w=47).astype(np.float32) / 255.0))
    assert video.shape == (12, 34, 48, 3)


def test_gif_fallback_without_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "_find_ffmpeg", lambda: None)
    path = write_video(tmp_path / "turntable.mp4", frames(t=5), fps=10)
    assert path == tmp_path / "turntable.gif"
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.size == (64, 48)
    assert [p.name for p in tmp_path.iterdir()] == ["turntable.gif"]


def test_gif_fallback_when_ffmpeg_fails(tmp_path, monkeypatch):
    def broken(path, frames, fps):
        Path(path).write_bytes(b"half a video")
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(export, "_write_mp4", broken)
    path = write_video(tmp_path / "turntable.mp4", frames(t=3))
    assert path.suffix == ".gif"
    assert [p.name for p in tmp_path.iterdir()] == ["turntable.gif"]


def test_preview_grid_layout_and_depth_colours():
    v, h, w = 3, 16, 20
    rgb = np.zeros((v, h, w, 3), np.float32)
    rgb[..., 0] = 1.0  # red views
    depth = np.full((v, h, w, 1), 4.0, np.float32)
    depth[:, :, : w // 2] = 3.0  # left half nearer
    alpha = np.ones((v, h, w, 1), np.float32)
    alpha[:, :4] = 0.0  # top rows are background

    grid = preview_grid(rgb, depth, alpha)
    assert grid.shape == (2 * h, v * w, 3) and grid.dtype == np.uint8
    assert (grid[:h] == [255, 0, 0]).all()  # RGB row
    depth_row = grid[h:].astype(int)
    assert (depth_row[:4] == 255).all()  # masked background is white
    near, far = depth_row[10, 2], depth_row[10, w - 2]
    assert near.sum() > far.sum() and not (near == far).all()  # near is brighter

    assert preview_grid(rgb).shape == (h, v * w, 3)  # no depth rows
    many = np.zeros((10, h, w, 3), np.uint8)
    assert preview_grid(many, max_cols=4).shape == (3 * h, 4 * w, 3)  # 10 views wrap into 3 rows


def test_write_png(tmp_path):
    img = preview_grid(np.random.default_rng(0).random((2, 8, 8, 3)))
    path = write_png(tmp_path / "preview.png", img)
    assert np.array_equal(np.asarray(Image.open(path)), img)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("old contents\n")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_write(path, "w") as f:
            f.write("new contents, half wri")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]

    with atomic_write(path, "w") as f:
        f.write("new contents\n")
    assert path.read_text() == "new contents\n"


def test_json_and_yaml_take_configs_paths_and_numpy(tmp_path):
    @dataclasses.dataclass
    class Sub:
        path: Path = Path("/data/x.ply")
        size: tuple = (64, 64)

    obj = {"seed": np.int64(3), "lr": np.float32(0.5), "sub": Sub(), "views": np.arange(3)}
    plain = {"seed": 3, "lr": 0.5, "sub": {"path": "/data/x.ply", "size": [64, 64]}, "views": [0, 1, 2]}
    assert json.loads(write_json(tmp_path / "manifest.json", obj).read_text()) == plain
    text = write_yaml(tmp_path / "config.yaml", obj).read_text()
    assert yaml.safe_load(text) == plain
    assert text.startswith("seed: 3\n")  # insertion order, block style


def test_check_writable_dir(tmp_path):
    made = check_writable_dir(tmp_path / "runs" / "a")
    assert made.is_dir() and list(made.iterdir()) == []  # the probe file is gone
    blocker = tmp_path / "file.txt"
    blocker.write_text("I am a file")
    for bad in (blocker / "out", blocker):  # a folder under a file; a file where the folder should be
        with pytest.raises(UserError, match="cannot write to output folder") as err:
            check_writable_dir(bad)
        assert str(bad) in str(err.value)


def test_package_versions():
    versions = package_versions()
    assert versions["python"] == platform.python_version()
    assert set(versions) == {"python", "lucidkit", "torch", "diffusers", "transformers", "peft", "gsplat"}
    assert versions["gsplat"] == "1.5.3" and versions["lucidkit"]
