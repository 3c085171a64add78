"""The README tells the truth about the repository: its links exist, its command table lists every command, what it
says of checkpoints matches the presets, and its two set-up commands are where CI reads them."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_relative_links_point_at_files_in_the_repository():
    links = re.findall(r"\]\(([^)#]+)\)", README)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert local, "the README links its docs"
    assert [link for link in local if not (ROOT / link).exists()] == []
    assert "../shared" not in README


def test_command_table_lists_every_command():
    from lucidkit.commands.cli import COMMANDS

    table = [line for line in README.splitlines() if line.startswith("| `lucidkit ")]
    for name in COMMANDS:
        assert any(f"`lucidkit {name}" in row for row in table), name


def test_checkpoint_intervals_are_the_presets():
    stated = re.search(r"\((\d+) with `default`/`fast`, (\d+) with\s+`toy`\)", README)
    assert stated, "the README states the checkpoint interval of the presets"
    from lucidkit.generate import resolve_config

    every = {name: resolve_config(name, {}).output.checkpoint_every for name in ("default", "fast", "toy")}
    assert every["default"] == every["fast"] == int(stated.group(1)) and every["toy"] == int(stated.group(2))


def test_setup_commands_are_marked_for_ci():
    for marker in ("<!-- main-command -->", "<!-- test-command -->"):
        block = README.split(marker, 1)[1].split("```")[1].strip()
        assert block.count("\n") == 0 and block.startswith(("python3 -m venv", ". .venv/bin/activate"))
    assert "--index-url https://download.pytorch.org/whl/cpu" in README  # how to get the CPU-only build
