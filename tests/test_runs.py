"""Runs a user can trust: resume with a new step total, refused changes, finished runs left alone, no silent
overwrite of a user's folder, a sensible CPU thread count, timings over every session, and messages that read well."""

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import interrupted_at, one_line_error
from lucidkit.commands.cli import cli


def lucidkit(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def tiny(prior_dir, out):
    return ["--model", prior_dir, "--preset", "tiny", "--out", out, "--quiet", "--set", "output.turntable_frames=0"]


def hashes(folder: Path) -> dict:
    """sha256 of every file below `folder`, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tiny_prior_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "done"
    result = lucidkit("generate", "a red cube", *tiny(tiny_prior_dir, out))
    assert result.exit_code == 0, result.output
    return out


def test_resuming_a_finished_run_writes_nothing(finished_run):
    before = hashes(finished_run)
    result = lucidkit("generate", "--resume", finished_run)
    assert result.exit_code == 0, result.output
    assert "is finished (6 steps); nothing to do" in result.output
    assert hashes(finished_run) == before


def test_resume_refuses_settings_it_cannot_change(finished_run):
    before = hashes(finished_run)
    one_line_error(lucidkit("generate", "--resume", finished_run, "--set", "guidance.delta_t=50",
                            "--set", "camera.widen_every=100"), "cannot change guidance.delta_t, camera.widen_every")
    one_line_error(lucidkit("generate", "--resume", finished_run, "--steps", "3"), "at step 6", "--steps 6")
    assert hashes(finished_run) == before


def test_resume_with_more_steps_continues_and_records_every_session(tiny_prior_dir, tmp_path):
    out = tmp_path / "run"
    with interrupted_at(2):
        assert lucidkit("generate", "a red cube", *tiny(tiny_prior_dir, out)).exit_code == 2
    result = lucidkit("generate", "--resume", out, "--quiet")  # to the run's own total, 6
    assert result.exit_code == 0, result.output
    result = lucidkit("generate", "--resume", out, "--steps", "8", "--quiet")
    assert result.exit_code == 0, result.output
    assert "with loop.steps=8" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["steps"] == 8 and manifest["resumed_from_step"] == 6
    parts = manifest["timings"]["parts"]
    assert [(p["from_step"], p["to_step"]) for p in parts] == [(0, 2), (2, 6), (6, 8)]
    assert manifest["timings"]["total_s"] == pytest.approx(sum(p["seconds"] for p in parts))
    assert yaml.safe_load((out / "config.yaml").read_text())["loop"]["steps"] == 8


@pytest.mark.parametrize("command", ["generate", "edit", "train-lora"])
def test_a_users_folder_is_not_overwritten(command, tiny_prior_dir, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ("config.yaml", "preview.png", "turntable.mp4"):
        (folder / name).write_text(f"the user's own {name}")
    before = hashes(folder)
    inputs = {"generate": ["a red cube"], "edit": [Path("samples/red-cube.ply").resolve(), "--prompt", "a blue cube"],
              "train-lora": [Path("samples/lora-subject").resolve()]}[command]
    one_line_error(lucidkit(command, *inputs, "--model", tiny_prior_dir, "--out", folder),
                   "is not empty and is not a lucidkit run", "--overwrite")
    assert hashes(folder) == before


def test_overwrite_writes_into_a_users_folder(tiny_prior_dir, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    result = lucidkit("generate", "a red cube", *tiny(tiny_prior_dir, folder), "--overwrite")
    assert result.exit_code == 0, result.output
    assert (folder / "scene.ply").exists() and (folder / "notes.txt").read_text() == "keep me"


def test_thread_count_is_the_cores_shared_among_jobs(monkeypatch):
    from lucidkit import devices

    monkeypatch.setattr(devices, "usable_cores", lambda: 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert devices.cpu_threads() == 3  # the user's own setting
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert devices.cpu_threads() == 8
    assert devices.cpu_threads(jobs=3) == 2 and devices.cpu_threads(jobs=16) == 1
    assert devices.cpu_threads(requested=3, jobs=4) == 3


def test_threads_option_is_applied_and_recorded(tiny_prior_dir, tmp_path):
    import torch

    saved = torch.get_num_threads()
    try:
        result = lucidkit("generate", "a red cube", *tiny(tiny_prior_dir, tmp_path / "run"), "--threads", "1")
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / "run" / "manifest.json").read_text())["cpu_threads"] == 1
    finally:
        torch.set_num_threads(saved)
    one_line_error(lucidkit("generate", "a red cube", "--threads", "0"), "--threads")


def test_cli_lets_idle_openmp_threads_sleep(monkeypatch):
    from lucidkit.commands import cli as cli_module

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(cli_module, "cli", lambda: None)
    cli_module.main()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_unknown_device_is_one_line(tiny_prior_dir, tmp_path):
    for command, args in (("generate", ["a cube"]), ("edit-image", [tmp_path / "x.png", "--prompt", "a cube"])):
        one_line_error(lucidkit(command, *args, "--device", "tpu"), "--device", "'tpu' is not a device")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_existing_unwritable_folder_is_named_as_such(tmp_path):
    from lucidkit.errors import UserError
    from lucidkit.export import check_writable_dir

    with pytest.raises(UserError, match="/proc: the folder exists but files cannot be created in it"):
        check_writable_dir("/proc")


def test_log_lines_keep_the_elapsed_time(finished_run, capsys):
    """Written to a log (not a terminal), progress comes as whole lines with the elapsed time and ETA."""
    from types import SimpleNamespace

    from lucidkit.runs import Progress

    with Progress(200, 0, "generate", log_every=100) as progress:
        for step in (100, 200):
            progress(SimpleNamespace(step=step), {"loss": 1.5, "gaussians": 1000})
    lines = capsys.readouterr().err.strip().splitlines()
    clock = r"elapsed \d+:\d\d:\d\d  ETA \d+:\d\d:\d\d$"  # the format, not how long it took
    assert len(lines) == 2 and all(re.search(clock, line) for line in lines)
    assert lines[1].startswith("step 200/200  loss 1.5  gaussians 1000")


def test_building_a_pipeline_prints_no_library_warnings(tiny_prior_dir):
    """In a fresh process (diffusers' pipeline module warns when it is first imported): train-lora and
    generate --lora build a pipeline, and transformers' warnings about torchvision are not the user's business."""
    import subprocess
    import sys

    code = f"from lucidkit.prior import DiffusionPrior; DiffusionPrior.load({str(tiny_prior_dir)!r}).as_pipeline()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torchvision" not in done.stderr + done.stdout
