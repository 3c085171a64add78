"""`lucidkit generate` end to end on CPU with a tiny random prior: outputs, resume, and bad input."""

import json
import subprocess
import sys

import imageio.v3 as iio
import torch
import yaml
from click.testing import CliRunner

from conftest import interrupted_at, one_line_error
from lucidkit.commands.cli import cli
from lucidkit.splat.ply import read_ply


def generate(*args):
    return CliRunner().invoke(cli, ["generate", *args], catch_exceptions=False)


def tiny_args(prior_dir, out):
    return ["--model", str(prior_dir), "--preset", "tiny", "--out", str(out), "--quiet"]


def test_generate_writes_every_output(tiny_prior_dir, tmp_path):
    out = tmp_path / "run"
    result = generate("a red cube", *tiny_args(tiny_prior_dir, out), "--seed", "3")
    assert result.exit_code == 0, result.output
    for name in ["scene.ply", "preview.png", "turntable.mp4", "config.yaml", "manifest.json", "checkpoint.pt"]:
        assert (out / name).stat().st_size > 0, name
    manifest = json.loads((out / "manifest.json").read_text())
    scene = read_ply(out / "scene.ply")
    assert scene.num_gaussians == manifest["gaussians"] > 0
    assert manifest["seed"] == 3 and manifest["steps"] == 6 and manifest["prompt"] == "a red cube"
    assert manifest["versions"]["torch"] and manifest["timings"]["s_per_update"] > 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["prompt"] == "a red cube" and cfg["seed"] == 3 and cfg["loop"]["steps"] == 6
    frames = iio.imread(out / "turntable.mp4")
    assert frames.shape[0] == 4 and frames.shape[-1] == 3
    preview = iio.imread(out / "preview.png")
    assert preview.shape == (2 * 2 * 32, 4 * 32, 3)  # 2 rings × (RGB row + depth row), 4 views of 32²


def test_resume_continues_to_the_same_result(tiny_prior_dir, tmp_path):
    full = tmp_path / "full"
    assert generate("a blue cube", *tiny_args(tiny_prior_dir, full)).exit_code == 0

    part = tmp_path / "part"
    with interrupted_at(3):
        result = generate("a blue cube", *tiny_args(tiny_prior_dir, part))
    assert result.exit_code == 2 and "interrupted at step 3/6" in result.output
    assert "--resume" in result.output and not (part / "scene.ply").exists()

    result = generate("--resume", str(part), "--quiet")
    assert result.exit_code == 0, result.output
    manifest = json.loads((part / "manifest.json").read_text())
    assert manifest["steps"] == 6 and manifest["resumed_from_step"] == 3
    a, b = read_ply(full / "scene.ply").splats, read_ply(part / "scene.ply").splats
    assert a["means"].shape == b["means"].shape
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_new_run_refuses_to_overwrite_a_run(tiny_prior_dir, tmp_path):
    out = tmp_path / "run"
    assert generate("a red cube", *tiny_args(tiny_prior_dir, out)).exit_code == 0
    before = (out / "scene.ply").read_bytes()
    result = generate("a green cube", *tiny_args(tiny_prior_dir, out))
    assert result.exit_code != 0 and "already holds a run" in result.output
    assert (out / "scene.ply").read_bytes() == before


def test_bad_input_gives_one_clear_line(tiny_prior_dir, tmp_path):
    run = CliRunner().invoke
    one_line_error(run(cli, ["generate", "  ", "--model", str(tiny_prior_dir), "--out", str(tmp_path / "a")]),
                   "prompt is empty")
    one_line_error(run(cli, ["generate", "a cube", "--model", str(tmp_path / "nowhere"), "--preset", "tiny",
                             "--out", str(tmp_path / "b")]), "nowhere")
    no_unet = tmp_path / "no_unet"
    import shutil

    shutil.copytree(tiny_prior_dir, no_unet)
    shutil.rmtree(no_unet / "unet")
    one_line_error(run(cli, ["generate", "a cube", "--model", str(no_unet), "--preset", "tiny",
                             "--out", str(tmp_path / "c")]), "unet")
    one_line_error(run(cli, ["generate", "a cube", "--model", str(tiny_prior_dir), "--preset", "tiny",
                             "--set", "guidance.colour=3"]), "guidance.colour")
    one_line_error(run(cli, ["generate", "a cube", "--preset", "nope"]), "nope")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    one_line_error(run(cli, ["generate", "a cube", "--model", str(tiny_prior_dir), "--preset", "tiny",
                             "--out", str(blocker / "run")]), "file.txt")
    one_line_error(run(cli, ["generate", "--resume", str(tmp_path / "missing")]), "missing")


def test_help_of_every_command():
    from lucidkit.commands.cli import COMMANDS

    root = CliRunner().invoke(cli, ["--help"])
    assert root.exit_code == 0
    for name in COMMANDS:
        assert name in root.output
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output and "Examples" in result.output, name


def test_cli_import_pulls_no_heavy_module():
    code = (
        "import sys\n"
        "from lucidkit.commands.cli import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'gsplat', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_list_fields_shows_help_text(tiny_prior_dir):
    result = CliRunner().invoke(cli, ["generate", "--model", str(tiny_prior_dir), "--list-fields"])
    assert result.exit_code == 0
    assert "guidance.xs_inv_steps = 5" in result.output and "inversion" in result.output


def test_generate_from_a_single_safetensors_file(tiny_prior_dir, tmp_path):
    """A single original-layout checkpoint (what many users have) runs; configs and tokenizer come from a folder."""
    from lucidkit.testing import save_tiny_single_file

    ckpt = save_tiny_single_file(tmp_path / "model.safetensors", image_size=32, vae_scale_factor=4, layout="sd2")
    out = tmp_path / "run"
    result = generate("a red cube", "--model", str(ckpt), "--set", f"prior.config={tiny_prior_dir}",
                      "--tokenizer", str(tiny_prior_dir), "--preset", "tiny", "--out", str(out), "--quiet",
                      "--set", "loop.steps=2", "--set", "output.turntable_frames=0")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["spec"] == str(ckpt) and read_ply(out / "scene.ply").num_gaussians > 0
