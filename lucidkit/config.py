"""Typed configs from YAML presets, strictly: unknown keys are errors; `--set a.b=c` overrides any field.

A config is a tree of dataclasses. Each field's docstring (the string literal right under it) is its help text.
Presets are YAML files under `presets/<command>/<name>.yaml` holding any subset of the tree; what a preset does
not name keeps the dataclass default. The resolved config is saved with the outputs as `config.yaml`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from lucidkit.errors import UserError


class ConfigError(UserError):
    """A preset, a config file or a --set override that does not fit the config."""


def _presets_root() -> Path:
    import lucidkit.presets

    return Path(lucidkit.presets.__file__).resolve().parent


def preset_path(command: str, name: str) -> Path:
    """A preset by name (`presets/<command>/<name>.yaml`) or by path to a YAML file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    path = _presets_root() / command / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (_presets_root() / command).glob("*.yaml"))
        raise ConfigError(f"unknown preset {name!r} for '{command}' (known presets: {', '.join(known)}; "
                          f"or pass a path to a .yaml file)")
    return path


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of fields, got {type(data).__name__}")
    return data


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a YAML value to the field's type, or raise ConfigError naming the field."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not fit {hint}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of fields, got {value!r}")
        return from_dict(hint, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        return origin(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "3e-3" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def from_dict(cls, data: dict, where: str = ""):
    """Build dataclass `cls` from a (partial) mapping; unknown keys are errors that list the known ones."""
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"unknown config key '{_join(where, unknown[0])}' (known keys here: {', '.join(names)})")
    kwargs = {k: _coerce(v, hints[k], _join(where, k)) for k, v in data.items()}
    return cls(**kwargs)


def merge(cfg, data: dict, where: str = ""):
    """A copy of dataclass `cfg` with the fields in `data` replaced (nested mappings merge)."""
    hints = _hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{_join(where, key)}' (known keys here: {', '.join(names)})")
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = merge(current, value, _join(where, key))
        else:
            changes[key] = _coerce(value, hints[key], _join(where, key))
    return dataclasses.replace(cfg, **changes)


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict:
    """`["a.b=3", "c=[1, 2]"]` → `{"a": {"b": 3}, "c": [1, 2]}`; values are read as YAML."""
    tree: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value (e.g. guidance.delta_t=50), got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def drop_none(tree: dict) -> dict:
    """The entries of a nested mapping that are set (None = a flag not given; empty sub-mappings go too)."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            v = drop_none(v)
            if v:
                out[k] = v
        elif v is not None:
            out[k] = v
    return out


def command_overrides(sets, explicit: dict) -> dict:
    """A command's overrides: `--set key=value` items, then the explicit flags given (which win)."""
    return deep_merge(parse_overrides(sets), drop_none(explicit))


def resolve_preset(cls, command: str, preset: str | None, overrides: dict):
    """Preset (by name or .yaml path) of `command` + overrides → a `cls` config. Without a preset: 'toy' when the
    prior is the toy prior (the default), else 'default'."""
    model = overrides.get("prior", {}).get("model", "toy")
    name = preset or ("toy" if model == "toy" else "default")
    return merge(from_dict(cls, load_yaml(preset_path(command, name))), overrides)


def deep_merge(base: dict, new: dict) -> dict:
    """Nested mappings merged; values of `new` win."""
    merged = dict(base)
    for k, v in new.items():
        merged[k] = deep_merge(merged.get(k, {}), v) if isinstance(v, dict) else v
    return merged


def to_dict(cfg) -> dict:
    """Plain nested dict (tuples as lists) for YAML."""

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def field_docs(cls) -> dict[str, str]:
    """Field docstrings: the string literal on the line after each field, used as help text (a subclass's own
    docstring of a field wins over its base class's)."""
    docs = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                docs[node.target.id] = str(nxt.value.value).strip()
    return docs


def field_doc(cls, path: str) -> str:
    """The docstring of the field at dotted `path` of dataclass `cls` (e.g. "loop.steps")."""
    *parents, leaf = path.split(".")
    for key in parents:
        cls = _hints(cls)[key]
    return " ".join(field_docs(cls).get(leaf, "").split())


def describe(cfg, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, value, help) for every leaf field; used by `--list-fields`."""
    rows = []
    docs = field_docs(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = _join(prefix, f.name)
        if dataclasses.is_dataclass(value):
            rows += describe(value, key)
        else:
            rows.append((key, value, docs.get(f.name, "")))
    return rows


def fields_text(cfg) -> str:
    """Every field as `key = value` with its help on the next line (what `--list-fields` prints)."""
    return "\n".join(f"{key} = {value!r}\n    {doc}" for key, value, doc in describe(cfg))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
