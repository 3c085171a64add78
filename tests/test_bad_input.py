"""A scripted pass over bad input: every option of every run command given a value it cannot take.

Built from the commands' own Click parameters, so a new option is covered when it is added:
- a number option (`--steps`, `--seed`, `--anchor`, ...) gets a word: a wrong type;
- a choice (`--guidance`, `--precision`, `--up`, ...) gets a name that is not one of them: an unknown choice;
- `--device` gets 'tpu';
- a path option that is read (`--model`, `--lora`, `--cameras`, `--mask`, `--tokenizer`, `--resume`) gets a path that
  does not exist, and so does `--controlnet`; `--pose` gets an unknown name; `--out` gets an unwritable place and an existing folder (or file) that is not a run;
plus free-text values that are checked (`--preset`, `--set`, `--region`, `--model` names).
Each must end with one `Error:` line, a non-zero exit and no traceback, and change no file (inputs, the user's
folder, the samples), checked by hashes. Options that take any text (prompts, tokens) have no wrong value.
"""

import hashlib
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import one_line_error
from lucidkit.commands.cli import cli
from lucidkit.commands.options import Count, DeviceType

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
MISSING = "/nonexistent/lucidkit-test/input"
UNWRITABLE = "/proc/lucidkit-test/out"  # exists as a folder that cannot hold new files (Linux)


def base_args(command: str, prior: Path, work: Path) -> list:
    """Arguments that make a valid run of `command`, so that only the bad option is wrong."""
    quick = ["--model", prior, "--quiet", "--set", "output.turntable_frames=0"]
    return {
        "generate": ["a red cube", *quick, "--preset", "tiny", "--steps", "1", "--out", work / "run"],
        "edit": [SAMPLES / "red-cube.ply", "--prompt", "a blue cube", *quick, "--preset", "toy", "--steps", "1",
                 "--out", work / "run"],
        "edit-image": [work / "photo.png", "--prompt", "a blue cube", "--model", prior, "--quiet", "--steps", "1",
                       "--out", work / "edited.png"],
        "train-lora": [SAMPLES / "lora-subject", "--model", prior, "--quiet", "--steps", "1",
                       "--no-prior-preservation", "--validation-every", "0", "--out", work / "run"],
        "avatar": ["a red person", "--pose", "t-pose", "--controlnet", "none", *quick, "--preset", "tiny",
                   "--steps", "1", "--out", work / "run"],
    }[command]


def bad_values(command: str, param: click.Option, work: Path) -> list[str]:
    """Values `param` cannot take (empty when any value is acceptable)."""
    name = param.name
    if isinstance(param.type, (Count, click.types.IntParamType, click.types.FloatParamType)):
        return ["abc"]
    if isinstance(param.type, click.Choice):
        return ["nope"]
    if isinstance(param.type, DeviceType):
        return ["tpu"]
    if name == "out":
        existing = work / ("edited.png" if command == "edit-image" else "users-folder")
        return [UNWRITABLE, str(existing)]
    if isinstance(param.type, click.Path) or name in ("model", "resume"):
        return [MISSING]
    return {"preset": ["nope"], "sets": ["loop.steps", "no.such.field=1"], "region": ["box:1,2"], "pose": ["nope"],
            "controlnet": [MISSING]}.get(name, [])


def cases():
    """(command, option) for every option of the run commands that has a wrong value."""
    out = []
    for command in ("generate", "edit", "edit-image", "train-lora", "avatar"):
        cmd = cli.get_command(click.Context(cli), command)
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.is_flag and bad_values(command, param, Path("/")):
                out.append((command, param.opts[0]))
    return out


@pytest.fixture()
def work(tmp_path):
    Image.fromarray(np.full((32, 32, 3), (200, 30, 30), np.uint8)).save(tmp_path / "photo.png")
    (tmp_path / "edited.png").write_bytes(b"the user's earlier edit")
    folder = tmp_path / "users-folder"
    folder.mkdir()
    (folder / "preview.png").write_bytes(b"the user's own picture")
    return tmp_path


def hashes(*folders: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command, option", cases())
def test_bad_value_is_one_clear_line_and_changes_nothing(command, option, tiny_prior_dir, work):
    cmd = cli.get_command(click.Context(cli), command)
    param = next(p for p in cmd.params if isinstance(p, click.Option) and p.opts[0] == option)
    values = bad_values(command, param, work)
    args = [str(a) for a in base_args(command, tiny_prior_dir, work)]
    before = hashes(work, SAMPLES)
    for value in values:
        if option in args:  # replace the base value of an option the base run sets
            i = args.index(option)
            trial = args[:i] + [option, value] + args[i + 2:]
        else:
            trial = args + [option, value]
        result = CliRunner().invoke(cli, [command, *trial])
        one_line_error(result)
        assert hashes(work, SAMPLES) == before, (option, value)
        assert not (work / "run").exists(), (option, value)  # no half-made run folder either
