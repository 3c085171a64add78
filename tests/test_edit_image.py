"""`lucidkit edit-image`: 2D editing with the shared guidance, on the shipped toy prior (CPU)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import one_line_error
from lucidkit.commands.cli import cli


def _write(path, array):
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="module")
def red_cube_png(tmp_path_factory):
    """A ground-truth toy render of a red cube, 64×64 on white."""
    from lucidkit.bench.edit_image import toy_inputs

    images, _ = toy_inputs("a red cube", views=1)
    arr = (images[0].numpy() * 255 + 0.5).astype(np.uint8)
    return _write(tmp_path_factory.mktemp("in") / "cube.png", arr)


def _run(*args):
    result = CliRunner().invoke(cli, ["edit-image", *map(str, args)])
    return result


def test_toy_edit_shows_the_target_and_keeps_the_silhouette(red_cube_png, tmp_path):
    """The user-visible claim: "a red cube" → "a blue cube" is read as a blue cube, and the object stays put."""
    from lucidkit.bench.edit_image import iou, silhouette
    from lucidkit.toyworld.evaluator import ToyEvaluator

    out = tmp_path / "blue.png"
    r = _run(red_cube_png, "--prompt", "a blue cube", "--source-prompt", "a red cube", "--guidance", "dds",
             "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    before = torch.from_numpy(np.asarray(Image.open(red_cube_png), dtype=np.float32) / 255)[None]
    after = torch.from_numpy(np.asarray(Image.open(out), dtype=np.float32) / 255)[None]
    evaluator = ToyEvaluator.load()
    assert evaluator.prompt_accuracy(before, "a red cube") == 1.0
    assert evaluator.prompt_accuracy(after, "a blue cube") == 1.0
    assert float(iou(silhouette(after), silhouette(before))[0]) >= 0.8
    manifest = json.loads((tmp_path / "blue.json").read_text())
    assert manifest["method"] == "dds" and manifest["prompt"] == "a blue cube" and manifest["size"] == [64, 64]
    strip = Image.open(tmp_path / "blue.progress.png")
    assert strip.size == (64 * 8, 64)  # the input, then 7 progress frames


def test_any_size_comes_back_at_its_size_and_the_mask_keeps_the_rest(tmp_path):
    rng = np.random.default_rng(0)
    photo = _write(tmp_path / "photo.png", rng.integers(0, 256, (50, 90, 3), dtype=np.uint8))  # not square
    mask = np.zeros((50, 90, 3), dtype=np.uint8)
    mask[10:30, 20:60] = 255
    mask_path = _write(tmp_path / "mask.png", mask)
    out = tmp_path / "edited.png"
    r = _run(photo, "--prompt", "a blue cube", "--mask", mask_path, "--steps", "4", "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    src, got = np.asarray(Image.open(photo)), np.asarray(Image.open(out))
    assert got.shape == src.shape
    keep = mask[..., 0] == 0
    assert np.array_equal(got[keep], src[keep])  # outside the mask: pixel-identical
    assert not np.array_equal(got[~keep], src[~keep])  # inside: edited


def test_auto_mask_keeps_the_background_and_changes_the_object(red_cube_png, tmp_path):
    """With a source prompt the presets edit only where the prompts disagree: ISM turns the cube blue and leaves the
    white background as it was (without the mask it tints it); --auto-mask 0 turns it off."""
    from lucidkit.bench.edit_image import silhouette

    src = np.asarray(Image.open(red_cube_png), dtype=np.float32) / 255
    background = ~silhouette(torch.from_numpy(src)[None])[0].numpy()
    far = np.ones_like(background)
    far[12:52, 12:52] = False  # a border well away from the cube (it spans about 20-44)
    assert not (far & ~background).any()
    changes = {}
    for auto in ("0.5", "0"):
        out = tmp_path / f"auto{auto}.png"
        r = _run(red_cube_png, "--prompt", "a blue cube", "--source-prompt", "a red cube", "--auto-mask", auto,
                 "--steps", "100", "--out", out, "--quiet")
        assert r.exit_code == 0, r.output
        got = np.asarray(Image.open(out), dtype=np.float32) / 255
        changes[auto] = (np.abs(got - src).max(-1), json.loads(out.with_suffix(".json").read_text()))
    diff, manifest = changes["0.5"]
    assert 0.05 < manifest["auto_mask_share"] < 0.6
    assert diff[far].max() < 0.03  # the background far from the cube: unchanged
    assert diff[~background].mean() > 0.2  # the cube itself: changed (red -> blue)
    assert changes["0"][1]["auto_mask_share"] is None
    assert changes["0"][0][far].mean() > diff[far].mean()  # without the mask the background drifts more


def test_same_seed_same_image(red_cube_png, tmp_path):
    paths = []
    for name in ("a.png", "b.png"):
        r = _run(red_cube_png, "--prompt", "a blue cube", "--steps", "3", "--seed", "5", "--out", tmp_path / name,
                 "--quiet")
        assert r.exit_code == 0, r.output
        paths.append(tmp_path / name)
    assert hashlib.sha256(paths[0].read_bytes()).digest() == hashlib.sha256(paths[1].read_bytes()).digest()


@pytest.mark.parametrize("method", ["ism", "sds", "dds"])
def test_every_method_runs_from_the_same_flags(red_cube_png, tmp_path, method):
    r = _run(red_cube_png, "--prompt", "a blue cube", "--source-prompt", "a red cube", "--guidance", method,
             "--steps", "2", "--out", tmp_path / "o.png", "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "o.json").read_text())["method"] == method


def test_bad_inputs_get_one_clear_error(red_cube_png, tmp_path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image")
    one_line_error(_run(garbage, "--prompt", "a blue cube", "--out", tmp_path / "o.png"), "garbage.png",
                    "not a readable image")
    one_line_error(_run(tmp_path / "missing.png", "--prompt", "a blue cube", "--out", tmp_path / "o.png"),
                    "missing.png", "does not exist")
    one_line_error(_run(red_cube_png, "--prompt", "  ", "--out", tmp_path / "o.png"), "prompt is empty")
    small_mask = _write(tmp_path / "small.png", np.full((10, 10, 3), 255, dtype=np.uint8))
    one_line_error(_run(red_cube_png, "--prompt", "a blue cube", "--mask", small_mask, "--out", tmp_path / "o.png"),
                    "small.png", "10x10", "64x64")
    black = _write(tmp_path / "black.png", np.zeros((64, 64, 3), dtype=np.uint8))
    one_line_error(_run(red_cube_png, "--prompt", "a blue cube", "--mask", black, "--out", tmp_path / "o.png"),
                    "all black")
    one_line_error(_run(red_cube_png, "--prompt", "a blue cube", "--out", tmp_path / "o.jpg"), ".png")
    assert not list(tmp_path.glob("o.*"))  # nothing half-written


def test_existing_output_is_not_overwritten(red_cube_png, tmp_path):
    out = tmp_path / "keep.png"
    out.write_bytes(b"precious")
    one_line_error(_run(red_cube_png, "--prompt", "a blue cube", "--steps", "1", "--out", out), "already exists",
                    "--overwrite")
    assert out.read_bytes() == b"precious"
    before = red_cube_png.read_bytes()
    one_line_error(_run(red_cube_png, "--prompt", "a blue cube", "--out", red_cube_png), "input")
    assert red_cube_png.read_bytes() == before


def test_help_has_examples():
    r = CliRunner().invoke(cli, ["edit-image", "--help"])
    assert r.exit_code == 0 and "Examples:" in r.output and "--mask" in r.output and "dds" in r.output
