"""Job lists for `lucidkit batch`: read a prompt list, resolve each row to a config and a run folder.

Three kinds of file, each row naming the line it came from so that a bad row gives one clear error:
- text (any other suffix): one prompt a line; blank lines and lines starting with `#` are skipped.
- YAML: a list of rows, each a prompt string or a mapping with `prompt` and optional `seed`, `preset`, `set`
  (config fields, a mapping or a list of "key=value"), `command` (generate | avatar) and `name` (the folder);
  or a sweep, a mapping with `prompts:` and optional `seeds:`, `methods:`, `preset:`, `set:`, whose jobs are
  every combination prompts × seeds × methods, in that order.
- CSV: a header row with a `prompt` column; optional columns `seed`, `preset`, `set` ("k=v; k=v"), `command`,
  `name`, and any dotted config field as a column of its own (`guidance.method`). Empty cells are not given.

Each job's folder is `<out>/<prompt slug>-s<seed>-<hash>`, the hash of its fully resolved config: the same job
finds the same folder on a re-run (to skip or resume it), a changed job gets a new one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lucidkit import config as config_lib
from lucidkit.errors import UserError
from lucidkit.runs import slugify

ROW_KEYS = ("prompt", "seed", "preset", "set", "command", "name")
SWEEP_KEYS = ("prompts", "seeds", "methods", "preset", "set", "command")
COMMANDS = ("generate", "avatar")
AVAILABLE_COMMANDS = ("generate",)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class Row:
    """One job as written in the list, before presets are applied."""

    line: int
    """Line of the list file the row starts on (1-based)."""
    prompt: str
    seed: int | None = None
    preset: str | None = None
    overrides: dict = field(default_factory=dict)
    """Config fields set by the row (nested mapping, as from --set)."""
    command: str = "generate"
    name: str | None = None


@dataclass
class Job:
    """One job ready to run: its resolved config (a plain mapping) and its run folder."""

    index: int
    line: int
    prompt: str
    config: dict
    folder: Path


class ListError(UserError):
    """A job list that cannot be read; the message names the file and the line."""


def read_rows(path: str | Path) -> list[Row]:
    """The rows of a job list (text, YAML or CSV by suffix), checked; raises ListError naming the bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ListError(f"cannot read the job list {path}: {getattr(e, 'strerror', None) or e}") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        rows = _yaml_rows(text, path)
    elif suffix == ".csv":
        rows = _csv_rows(text, path)
    else:
        rows = [Row(line=i, prompt=s.strip()) for i, s in enumerate(text.splitlines(), 1)
                if s.strip() and not s.lstrip().startswith("#")]
    if not rows:
        raise ListError(f"the job list {path} holds no jobs")
    return rows


def _yaml_rows(text: str, path: Path) -> list[Row]:
    # compose first to keep each item's line number, then build the plain data from the same node tree
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        raise ListError(f"{path} is not valid YAML: {e}") from None
    finally:
        loader.dispose()
    if isinstance(data, list):
        return [_row(item, child.start_mark.line + 1, path) for item, child in zip(data, node.value)]
    if isinstance(data, dict) and "prompts" in data:
        return _sweep_rows(data, node.start_mark.line + 1, path)
    raise ListError(f"{path}: expected a list of jobs (prompts or mappings with 'prompt'), or a sweep mapping "
                    f"with 'prompts:' (and 'seeds:', 'methods:')")


def _row(item, line: int, path: Path) -> Row:
    """One YAML row: a prompt string, or a mapping of ROW_KEYS."""
    where = f"{path} line {line}"
    if isinstance(item, str):
        return Row(line=line, prompt=item.strip())
    if not isinstance(item, dict):
        raise ListError(f"{where}: expected a prompt or a mapping with 'prompt', got {item!r}")
    unknown = [k for k in item if k not in ROW_KEYS]
    if unknown:
        raise ListError(f"{where}: unknown key {unknown[0]!r} (a row may have: {', '.join(ROW_KEYS)})")
    if "prompt" not in item:
        raise ListError(f"{where}: the row has no 'prompt'")
    return Row(line=line, prompt=str(item["prompt"] or "").strip(), seed=_seed(item.get("seed"), where),
               preset=_opt_str(item.get("preset")), overrides=_sets(item.get("set"), where),
               command=_command(item.get("command"), where), name=_name(item.get("name"), where))


def _sweep_rows(data: dict, line: int, path: Path) -> list[Row]:
    """prompts × seeds × methods, each combination a row (all on the sweep's line)."""
    where = f"{path} line {line}"
    unknown = [k for k in data if k not in SWEEP_KEYS]
    if unknown:
        raise ListError(f"{where}: unknown sweep key {unknown[0]!r} (a sweep may have: {', '.join(SWEEP_KEYS)})")
    prompts = _list(data, "prompts", where)
    seeds = [_seed(s, where) for s in _list(data, "seeds", where, default=[None])]
    methods = [_opt_str(m) for m in _list(data, "methods", where, default=[None])]
    base = _sets(data.get("set"), where)
    command = _command(data.get("command"), where)
    rows = []
    for prompt in prompts:
        for seed in seeds:
            for method in methods:
                overrides = config_lib.deep_merge(base, {"guidance": {"method": method}}) if method else base
                rows.append(Row(line=line, prompt=str(prompt or "").strip(), seed=seed,
                                preset=_opt_str(data.get("preset")), overrides=overrides, command=command))
    return rows


def _csv_rows(text: str, path: Path) -> list[Row]:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    if "prompt" not in header:
        raise ListError(f"{path} line 1: a CSV job list needs a header row with a 'prompt' column "
                        f"(optional: seed, preset, set, command, name, or a dotted config field)")
    bad = [h for h in header if h not in ROW_KEYS and "." not in h]
    if bad:
        raise ListError(f"{path} line 1: unknown column {bad[0]!r} (columns: {', '.join(ROW_KEYS)}, or a dotted "
                        f"config field such as guidance.method)")
    rows = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if len(cells) > len(header):
            raise ListError(f"{path} line {line}: {len(cells)} cells but the header has {len(header)} columns")
        values = {h: c.strip() for h, c in zip(header, cells) if c.strip()}
        where = f"{path} line {line}"
        sets = [s for s in values.get("set", "").split(";") if s.strip()]
        sets += [f"{h}={v}" for h, v in values.items() if "." in h]
        rows.append(Row(line=line, prompt=values.get("prompt", ""), seed=_seed(values.get("seed"), where),
                        preset=values.get("preset"), overrides=_sets(sets, where),
                        command=_command(values.get("command"), where), name=_name(values.get("name"), where)))
    return rows


def _list(data: dict, key: str, where: str, default=None) -> list:
    value = data.get(key, default)
    if not isinstance(value, list) or not value:
        raise ListError(f"{where}: '{key}' must be a non-empty list, got {value!r}")
    return value


def _seed(value, where: str) -> int | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ListError(f"{where}: seed must be a whole number, got {value!r}") from None


def _sets(value, where: str) -> dict:
    """A row's `set`: a mapping of dotted keys, or a list of "key=value" strings, to a nested override tree."""
    if value is None:
        return {}
    if isinstance(value, dict):
        value = [f"{k}={json.dumps(v)}" for k, v in value.items()]  # JSON is YAML: values keep their type
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ListError(f"{where}: 'set' must be a mapping or a list of key=value, got {value!r}")
    try:
        return config_lib.parse_overrides([v.strip() for v in value])
    except UserError as e:
        raise ListError(f"{where}: {e}") from None


def _command(value, where: str) -> str:
    command = _opt_str(value) or "generate"
    if command not in COMMANDS:
        raise ListError(f"{where}: command must be one of {', '.join(COMMANDS)}, got {command!r}")
    if command not in AVAILABLE_COMMANDS:
        raise ListError(f"{where}: command {command!r} is not available yet (`lucidkit {command}` is planned); "
                        f"only {', '.join(AVAILABLE_COMMANDS)} rows can run today")
    return command


def _name(value, where: str) -> str | None:
    name = _opt_str(value)
    if name is not None and not NAME_RE.fullmatch(name):
        raise ListError(f"{where}: name {name!r} must be a plain folder name (letters, digits, '.', '_', '-')")
    return name


def _opt_str(value) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value).strip()


def resolve_jobs(rows: list[Row], out: Path, preset: str | None, overrides: dict, seed: int | None,
                 path: str | Path = "job list") -> list[Job]:
    """Rows → jobs: the command-line preset and overrides, then each row's (a row wins); one folder per job.

    Every config is resolved here, before anything runs, so a bad field stops the batch with the row's line.
    Two rows that resolve to the same job (hence the same folder) are an error too.
    """
    from lucidkit.generate import resolve_config

    jobs, seen = [], {}
    for row in rows:
        tree = config_lib.deep_merge(overrides, row.overrides)
        given = config_lib.drop_none({"prompt": row.prompt, "seed": row.seed if row.seed is not None else seed})
        tree = config_lib.deep_merge(tree, given)
        try:
            cfg = config_lib.to_dict(resolve_config(row.preset or preset, tree))
        except UserError as e:
            raise ListError(f"{path} line {row.line}: {e}") from None
        name = row.name or job_folder_name(cfg)
        if name in seen:
            raise ListError(f"{path} line {row.line} repeats the job of line {seen[name]} (same folder {name}; "
                            f"change its seed or settings, or give it another name)")
        seen[name] = row.line
        jobs.append(Job(index=len(jobs), line=row.line, prompt=row.prompt, config=cfg, folder=Path(out) / name))
    return jobs


def job_folder_name(cfg: dict) -> str:
    """`<prompt slug>-s<seed>-<8 hex>`: readable, and the same for the same resolved config."""
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:8]
    return f"{slugify(cfg['prompt'])}-s{cfg['seed']}-{digest}"


def job_state(folder: Path) -> str:
    """'complete' (manifest.json and every output it lists), 'resume' (a checkpoint to continue) or 'new'."""
    manifest = folder / "manifest.json"
    if manifest.is_file():
        try:
            outputs = json.loads(manifest.read_text()).get("outputs", [])
        except (OSError, ValueError, AttributeError):
            outputs = None
        if outputs is not None and all((folder / name).exists() for name in outputs):
            return "complete"
    if (folder / "checkpoint.pt").is_file() and (folder / "config.yaml").is_file():
        return "resume"
    return "new"
