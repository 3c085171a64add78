"""The layers of docs/architecture.md, checked on the source: which module may import which, no import circles, and
files short enough to read top to bottom."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# layer of each top-level module or package of lucidkit (commands are installed as lucidkit.commands)
LAYERS = {
    0: ["errors", "devices", "export", "config", "models", "arch", "images", "presets", "samples", "compile_cache"],
    1: ["cameras", "camera_files", "splat", "guidance", "prior", "regularizers", "objectives", "optimize", "toyworld", "body"],
    2: ["runs", "scene_run", "exporters"],
    3: ["generate", "edit", "image_edit", "lora", "avatar", "viewer", "bench", "batch"],
    4: ["commands"],
}
LAYER = {name: layer for layer, names in LAYERS.items() for name in names}


def modules() -> dict[str, Path]:
    found = {}
    for folder, prefix in ((ROOT / "lucidkit", "lucidkit"), (ROOT / "commands", "lucidkit.commands")):
        for path in folder.rglob("*.py"):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            found[".".join([prefix, *parts])] = path
    return found


def imports() -> dict[str, set[str]]:
    """module -> the lucidkit modules it imports (anywhere in the file, lazy imports included)."""
    edges = defaultdict(set)
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            edges[module].update(n for n in names if n.split(".")[0] == "lucidkit")
    return edges


def unit(module: str) -> str:
    """The top-level module or package a lucidkit module belongs to ('prior' for lucidkit.prior.core)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "config"  # `from lucidkit import config`


def test_every_module_has_a_layer():
    assert sorted({unit(m) for m in modules()} - set(LAYER) - {"testing", "__init__"}) == []


def test_imports_go_down_the_layers():
    wrong = []
    for module, targets in imports().items():
        src = unit(module)
        for target in targets:
            dst = unit(target)
            if dst in ("testing",) or dst not in LAYER or src == dst or src == "testing":
                continue
            if LAYER[dst] > LAYER[src] or (LAYER[dst] == LAYER[src] == 3 and src not in ("bench", "batch")):
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_engine_core_stands_alone():
    """The prior imports only the foundation; nothing but tests imports the test helpers."""
    for module, targets in imports().items():
        if unit(module) == "prior":
            assert {unit(t) for t in targets} <= {"prior", *LAYERS[0]}, module
        if unit(module) != "testing":
            assert not any(unit(t) == "testing" for t in targets), module


def test_no_import_circles():
    """Among modules (a package's __init__, which only gathers its names, does not count as an edge)."""
    found = modules()
    packages = {m for m, path in found.items() if path.name == "__init__.py"}
    units = defaultdict(set)
    for module, targets in imports().items():
        units[module].update(t for t in targets if t in found and t not in packages)
    seen, stack = {}, []

    def visit(node):  # depth-first search; a grey node met again closes a circle
        seen[node] = "grey"
        stack.append(node)
        for nxt in units[node]:
            if seen.get(nxt) == "grey":
                raise AssertionError(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = "black"

    for module in modules():
        if module not in seen:
            visit(module)


def test_files_are_short_enough_to_read():
    long = {str(p.relative_to(ROOT)): n for p in modules().values() if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_every_package_is_installed():
    """A plain `pip install .` (not editable) ships exactly the packages listed in pyproject.toml."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(["lucidkit", *p.parent.relative_to(ROOT / "lucidkit").parts])
             for p in (ROOT / "lucidkit").rglob("__init__.py")}
    assert found - listed == set()
