"""`lucidkit bench startup`: start-up and speed of each way of running the prior (`prior.compile`) as a user meets
them — whole `lucidkit generate` processes, here on an SD 2.1-base folder with random weights (issue 24).

For each mode (graphs, regional, encoder, off, full; cheapest first):
    fresh   a new process with EMPTY compile caches (a new TORCHINDUCTOR_CACHE_DIR; Triton's cache lives inside it,
            TRITON_CACHE_DIR is unset; a new TRITON_HOME beside it), as on a fresh machine
    warm    the same again with the caches the fresh run filled (a later run on that machine); not for "off" and
            "graphs", which compile nothing (their warm start is their fresh one)
    import  "full" only: the fresh run's cache exported with `lucidkit cache export`, imported with
            `lucidkit cache import` into another empty folder, then a run on it (a cluster node given the cache)
Each run reads from its manifest: start-up (process start -> first update finished), the steady time per update
(every update after the first) and the load time; the table adds the projected end-to-end minutes of the 5000-update
recipe (start-up + 5000 x ms/update). After every case the results so far are written to `out` (JSON) and a table
beside it (.txt). A case that would not fit the time left (`budget_s`) is skipped, and a later call with the same
`work` folder continues with the cases not yet measured. On a GPU machine: tools/gpu/startup.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from lucidkit.prior.modes import COMPILING_MODES

MODES = ("graphs", "regional", "encoder", "off", "full")  # cheapest first
RECIPE_UPDATES = 5000
# rough cost of each case on an H100 in seconds (process start to exit, 200 updates), to skip a case that cannot
# finish in the time left instead of cutting it off half-way
ESTIMATE_S = {"graphs": 50, "regional": 90, "encoder": 150, "off": 50, "full": 280}
WARM_ESTIMATE_S = {"regional": 60, "encoder": 60, "full": 130}
# modes that compile nothing: their warm start is their fresh one (not run twice)
UNCACHED = tuple(mode for mode in MODES if mode not in COMPILING_MODES)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lucidkit.commands.cli", *args]


def cache_env(folder: Path) -> dict:
    """The environment of a run whose compile caches are `folder` (Triton's kernels under it, as inductor puts
    them) and, beside it, Triton's home (its launcher stubs, ~/.triton otherwise: fresh for a fresh case too)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_CACHE_DIR"}
    env.update(TORCHINDUCTOR_CACHE_DIR=str(folder), TRITON_HOME=str(triton_home(folder)), HF_HUB_OFFLINE="1",
               PYTHONUNBUFFERED="1")
    folder.mkdir(parents=True, exist_ok=True)
    return env


def triton_home(cache: Path) -> Path:
    return cache.with_name(f"{cache.name}.triton-home")


def empty(cache: Path) -> Path:
    """`cache` and its Triton home removed: as on a fresh machine."""
    for folder in (cache, triton_home(cache)):
        shutil.rmtree(folder, ignore_errors=True)
    return cache


def run_generate(args, name: str, mode: str, cache: Path, timeout_s: float) -> dict:
    """One `lucidkit generate` process in mode `mode` with compile caches `cache`; its measurements."""
    out = args.results / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    steps = args.steps_off if mode == "off" else args.steps
    cmd = cli("generate", "a DSLR photo of a hamburger", "--model", str(args.model), "--preset", args.preset,
              "--steps", str(steps), "--out", str(out), "--quiet", "--device", args.device,
              "--set", f"prior.compile={mode}", "--set", "output.turntable_frames=0",
              "--set", "output.preview_every=0", "--set", "output.checkpoint_every=0")
    log = args.results / f"{name}.log"
    t0 = time.perf_counter()
    try:
        with open(log, "w") as f:
            rc = subprocess.run(cmd, env=cache_env(cache), stdout=f, stderr=subprocess.STDOUT,
                                timeout=timeout_s).returncode
    except subprocess.TimeoutExpired:
        return {"case": name, "error": f"cut off after {timeout_s:.0f} s (log: {log})"}
    wall = time.perf_counter() - t0
    if rc != 0:
        tail = "".join(log.read_text().splitlines(True)[-15:])
        return {"case": name, "error": f"exit {rc}: {tail}"}
    manifest = json.loads((out / "manifest.json").read_text())
    t = manifest["timings"]
    ms = 1e3 * t["s_per_update_after_first"] if t.get("s_per_update_after_first") else None
    # a graph capture that failed falls back to eager with a warning (lucidkit/prior/graphed_call.py): flag it
    warnings = [line.strip() for line in log.read_text().splitlines() if "capture failed" in line]
    return {"case": name, "mode": mode, "applied_mode": manifest["model"].get("compile_mode"), "updates": steps,
            "capture_warnings": warnings[:3], "graphs": manifest["model"].get("graphs"),
            "startup_s": t["startup_s"], "load_prior_s": t["load_prior_s"], "first_update_s": t["first_update_s"],
            "ms_per_update": ms, "outputs_s": t["outputs_s"], "process_wall_s": wall,
            "cache_mib": folder_mib(cache), "projected_recipe_min":
                (t["startup_s"] + RECIPE_UPDATES * ms / 1e3) / 60 if ms else None}


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def cache_roundtrip(args, source: Path, target: Path, timeout_s: float) -> dict:
    """`lucidkit cache export` of `source`, `lucidkit cache import` into the empty folder `target`."""
    archive = args.results / "full-cache.tar.gz"
    empty(target)
    info = {}
    for what, cache, cmd in (("export", source, cli("cache", "export", str(archive))),
                             ("import", target, cli("cache", "import", str(archive)))):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=cache_env(cache), capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            return {"error": f"cache {what} failed: {(done.stdout + done.stderr).strip()}"}
        info[f"{what}_s"] = time.perf_counter() - t0
    info["archive_mib"] = archive.stat().st_size / 2**20
    return info


def plan(modes: list[str]) -> list[tuple[str, str, str]]:
    """(case name, mode, kind) in the order they run: fresh and warm of each mode, cheapest mode first; the import
    case of "full" last (it needs full's fresh cache)."""
    cases = []
    for mode in modes:
        cases.append((f"{mode}-fresh", mode, "fresh"))
        if mode not in UNCACHED:
            cases.append((f"{mode}-warm", mode, "warm"))
    if "full" in modes:
        cases.append(("full-import", "full", "import"))
    return cases


def measure(args) -> dict:
    path = args.results / "startup.json"
    results = json.loads(path.read_text()) if path.exists() and not args.restart else {"cases": {}}
    results.update(device=device_name(args.device), model=str(args.model), preset=args.preset)
    deadline = time.perf_counter() + args.budget_s
    caches = args.results / "caches"
    for name, mode, kind in plan(args.modes):
        if name in results["cases"] and "error" not in results["cases"][name]:
            print(f"[{name}] measured earlier: kept", flush=True)
            continue
        if kind != "fresh" and "error" in results["cases"].get(f"{mode}-fresh", {"error": "missing"}):
            print(f"[{name}] skipped: needs {mode}-fresh's cache", flush=True)
            continue
        left = deadline - time.perf_counter()
        need = (WARM_ESTIMATE_S.get(mode, ESTIMATE_S[mode]) if kind != "fresh" else ESTIMATE_S[mode])
        if args.device != "cpu" and need > left:
            print(f"[{name}] skipped: needs ~{need} s, {left:.0f} s left; run again to continue", flush=True)
            continue
        cache = caches / f"{mode}-fresh"
        extra = {}
        if kind == "fresh":
            empty(cache)
        elif kind == "import":
            cache = caches / "full-imported"
            extra = cache_roundtrip(args, caches / "full-fresh", cache, left)
            if "error" in extra:
                results["cases"][name] = {"case": name, **extra}
                save(args, results)
                print(f"[{name}] {extra['error']}", flush=True)
                continue
            left = deadline - time.perf_counter()
        print(f"[{name}] running (cache {cache.name}, {len(list(cache.rglob('*')))} entries)...", flush=True)
        r = {**run_generate(args, name, mode, cache, max(left, 30)), **extra}
        results["cases"][name] = r
        save(args, results)
        print(f"[{name}] " + (r["error"] if "error" in r else
              f"start-up {r['startup_s']:.1f} s, {r['ms_per_update']:.1f} ms/update, load {r['load_prior_s']:.1f} s,"
              f" first update {r['first_update_s']:.1f} s, cache {r['cache_mib']:.0f} MiB"), flush=True)
    return results


def device_name(device: str) -> str:
    if device == "cpu":
        return "cpu"
    out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown GPU"


def table(results: dict) -> str:
    """One row per mode: fresh and warm start-up, ms per update (fresh run), recipe end to end."""
    cases = results["cases"]
    lines = [f"start-up by prior.compile mode: {results['model']} (preset {results['preset']}) on {results['device']}",
             f"{'mode':<10}{'fresh start-up s':>18}{'warm start-up s':>17}{'imported s':>12}{'ms/update':>11}"
             f"{'recipe min fresh':>18}{'recipe min warm':>17}"]

    def num(case: str, key: str, fmt: str = ".1f") -> str:
        value = cases.get(case, {}).get(key)
        return "—" if value is None else format(value, fmt)

    for mode in MODES:
        if not any(c.startswith(f"{mode}-") for c in cases):
            continue
        warm_s = "= fresh" if mode in UNCACHED else num(f"{mode}-warm", "startup_s")
        warm_min = "= fresh" if mode in UNCACHED else num(f"{mode}-warm", "projected_recipe_min")
        lines.append(f"{mode:<10}{num(f'{mode}-fresh', 'startup_s'):>18}{warm_s:>17}"
                     f"{num(f'{mode}-import', 'startup_s'):>12}{num(f'{mode}-fresh', 'ms_per_update'):>11}"
                     f"{num(f'{mode}-fresh', 'projected_recipe_min'):>18}{warm_min:>17}")
    errors = [f"  {name}: {c['error']}" for name, c in cases.items() if "error" in c]
    errors += [f"  {name}: {w}" for name, c in cases.items() for w in c.get("capture_warnings", [])]
    if errors:
        lines += ["errors:", *errors]
    lines.append(f"recipe min = (start-up + {RECIPE_UPDATES} x ms/update) / 60; ms/update = every update after the "
                 "first, over the run's updates (early steps: the most inversion calls)")
    if "full-import" in cases and "archive_mib" in cases["full-import"]:
        c = cases["full-import"]
        lines.append(f"cache archive: {c['archive_mib']:.0f} MiB, export {c['export_s']:.1f} s, "
                     f"import {c['import_s']:.1f} s")
    return "\n".join(lines)


def save(args, results: dict) -> None:
    """The results so far: in the work folder (for a later call to continue) and at `out` with a .txt table."""
    from lucidkit.export import write_json

    write_json(args.results / "startup.json", results)
    if args.out:
        write_json(args.out, results)
        Path(args.out).with_suffix(".txt").write_text(table(results) + "\n")


def bench_startup(model: str, modes: tuple[str, ...] = MODES, steps: int = 200, steps_off: int = 100,
                  preset: str = "default", device: str = "cuda", budget_s: float = 480, work: str = "/tmp/startup_bench",
                  out: str | None = None, restart: bool = False) -> dict:
    """Measure `modes` (see the module docstring) and print the table; returns the results."""
    from types import SimpleNamespace

    from lucidkit.errors import UserError

    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise UserError(f"unknown mode {unknown[0]!r} in --cases; choose from {', '.join(MODES)}")
    if not (Path(model) / "model_index.json").is_file():
        raise UserError(f"--model {model} is not a diffusers folder (no model_index.json); write one with random "
                        f"weights: python tools/gpu/save_random_prior.py {model}")
    args = SimpleNamespace(model=Path(model), modes=[m for m in MODES if m in modes], steps=steps,
                           steps_off=steps_off, preset=preset, device=device, budget_s=budget_s,
                           results=Path(work), out=out, restart=restart)
    args.results.mkdir(parents=True, exist_ok=True)
    results = measure(args)
    print(table(results), flush=True)
    return results
