"""`lucidkit batch` versus separate `lucidkit generate` processes on a GPU machine: wall time and start-up saved.

Run it through tools/gpu/batch_bench.sh (which installs the carried wheels first). One mode per call, so that each
fits a 10-minute call; results accumulate in --results (default /tmp/batch_bench, kept while the machine is
warm) and every call prints the comparison of what has been measured so far (also written to $OUT).

    batch     N prompts through `lucidkit batch` (one worker per GPU; --workers 1 for one GPU)
    separate  the same N prompts as N `lucidkit generate` processes, one after another (a shell loop); a call
              cut off by its time limit continues with the next prompt when run again
    scale     N prompts through `batch` with 1 worker, then with every GPU (only on a machine with several)
    report    print the comparison only

Every job runs with `prior.compile=--compile` and without the turntable, previews and checkpoints, as the runs of
`lucidkit bench startup` (lucidkit/bench/startup.py) do: with two prompts, "separate" is then exactly that bench's
fresh run followed by its warm run, and `report` uses its JSON (--startup) when "separate" was not run here.

Each mode starts with an empty torch.compile cache (`lucidkit.bench.startup.cache_env`), as on a fresh
machine; within the separate mode the processes share it, as a shell loop on one machine would. The prior is an
SD 2.1-base folder with random weights (tools/gpu/save_random_prior.py): real load, compile and update times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from lucidkit.bench import startup

PROMPTS = ["a DSLR photo of a hamburger", "a wooden chair", "a ceramic teapot", "a red sports car",
           "a stone castle tower", "a bowl of ramen", "a vintage camera", "a pineapple", "a knight's helmet",
           "a potted cactus", "a blue backpack", "a golden trophy", "a toy robot", "a loaf of bread",
           "a leather boot", "a lighthouse"]


def cache_env(results: Path, name: str) -> dict:
    """Environment whose compile caches are this measurement's own folder (as `lucidkit bench startup` sets them)."""
    return startup.cache_env(results / "caches" / name)


def fresh_caches(results: Path, name: str) -> dict:
    """Environment with empty compile caches for this measurement (as on a fresh machine)."""
    return startup.cache_env(startup.empty(results / "caches" / name))


def timed(cmd: list[str], env: dict, log: Path) -> float:
    """Run `cmd`, its output into `log`; its wall time in seconds (exits on failure, showing the log's end)."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    seconds = time.perf_counter() - t0
    if rc != 0:
        print(f"FAILED ({rc}): {' '.join(cmd)}\n" + "".join(log.read_text().splitlines(True)[-30:]))
        sys.exit(1)
    return seconds


SETS = ["output.turntable_frames=0", "output.preview_every=0", "output.checkpoint_every=0"]


def common_args(args) -> list[str]:
    """The options every job of both modes gets."""
    out = ["--model", str(args.model), "--preset", args.preset, "--steps", str(args.steps), "--quiet"]
    for item in [*SETS, f"prior.compile={args.compile}"]:
        out += ["--set", item]
    return out


def manifest_row(folder: Path) -> dict:
    m = json.loads((folder / "manifest.json").read_text())
    return {"prompt": m["prompt"], "steps": m["steps"], **{k: m["timings"].get(k) for k in
            ("load_prior_s", "optimize_s", "s_per_update", "outputs_s", "total_s")}}


def run_batch(args, name: str, workers: int | None) -> dict:
    out = args.results / name
    shutil.rmtree(out, ignore_errors=True)
    prompts = args.results / f"{name}-prompts.txt"
    prompts.write_text("\n".join(PROMPTS[: args.prompts]) + "\n")
    cmd = [sys.executable, "-m", "lucidkit.commands.cli", "batch", str(prompts), "--out", str(out), *common_args(args)]
    cmd += ["--workers", str(workers)] if workers else []
    wall = timed(cmd, fresh_caches(args.results, name), args.results / f"{name}.log")
    report = json.loads((out / "batch.json").read_text())
    jobs = [{**manifest_row(out / j["folder"]), "job_s": j["seconds"], "worker": j["worker"]} for j in report["jobs"]]
    return {"mode": name, "wall_s": wall, "workers": len(report["workers"]), "jobs": jobs,
            "gpus": sorted({w["gpu"] or "cpu" for w in report["workers"]})}


def run_separate(args) -> dict:
    """One `generate` process per prompt, one after another; the result is saved after each, and a call that ran
    out of time continues where it stopped (with the same compile cache) when run again."""
    path = args.results / "separate.json"
    done = json.loads(path.read_text()) if path.exists() else None
    if done and len(done["jobs"]) < args.prompts:
        env, jobs = cache_env(args.results, "separate"), done["jobs"]  # continue
    else:
        env, jobs = fresh_caches(args.results, "separate"), []
    for i in range(len(jobs), args.prompts):
        out = args.results / "separate" / f"job{i}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "lucidkit.commands.cli", "generate", PROMPTS[i], "--out", str(out),
               *common_args(args)]
        seconds = timed(cmd, env, args.results / f"separate-{i}.log")
        jobs.append({**manifest_row(out), "job_s": seconds})
        # the processes run back to back, so the loop's wall time is the sum of theirs
        result = {"mode": "separate", "wall_s": sum(j["job_s"] for j in jobs), "workers": 1, "jobs": jobs}
        path.write_text(json.dumps(result, indent=1))
        print(f"  generate {i + 1}/{args.prompts}: {seconds:.1f} s", flush=True)
    return json.loads(path.read_text())


def from_startup(path: Path, mode: str, prompts: int) -> dict | None:
    """"separate" from `lucidkit bench startup`'s JSON: its fresh `generate` process, then prompts - 1 times its warm
    one (a shell loop on one machine: the first run fills the compile cache, the later ones find it)."""
    if not path.exists():
        return None
    bench = json.loads(path.read_text())
    cases = bench["cases"]
    fresh = cases.get(f"{mode}-fresh", {})
    warm = cases.get(f"{mode}-warm", fresh)  # modes that compile nothing have no warm case: warm = fresh
    if "process_wall_s" not in fresh or "process_wall_s" not in warm:
        return None
    walls = [fresh["process_wall_s"]] + [warm["process_wall_s"]] * (prompts - 1)
    return {"wall_s": sum(walls), "walls": walls, "updates": fresh["updates"], "preset": bench.get("preset"),
            "startups": [fresh["startup_s"]] + [warm["startup_s"]] * (prompts - 1)}


def report(results: Path, startup: Path | None = None, mode: str = "full", preset: str = "fast") -> str:
    """The measurements so far, as text: per mode the wall time, per job its time and its start-up."""
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}
    if not runs:
        return "no measurements yet"
    # the steady time per update: the fastest per-update time of any job (compiled and warm)
    steady = min(j["s_per_update"] for r in runs.values() for j in r["jobs"] if j["s_per_update"])
    lines = [(f"steady time per update (fastest job): {steady * 1000:.1f} ms; start-up of a job = its time - "
              f"updates x steady - outputs")]
    for name, r in runs.items():
        lines.append(f"\n{name}: {len(r['jobs'])} jobs of {r['jobs'][0]['steps']} updates, {r['workers']} worker(s)"
                     f" {r.get('gpus', '')}: wall {r['wall_s']:.1f} s")
        for j in r["jobs"]:
            overhead = j["job_s"] - j["steps"] * steady - (j["outputs_s"] or 0)
            lines.append(f"  {j['prompt'][:28]:<28} job {j['job_s']:7.1f} s  load {j['load_prior_s']:5.1f} s  "
                         f"optimize {j['optimize_s']:6.1f} s  {j['s_per_update'] * 1000:6.1f} ms/update  "
                         f"outputs {j['outputs_s']:5.1f} s  start-up {overhead:6.1f} s")
    if "batch" in runs and "separate" in runs and len(runs["batch"]["jobs"]) == len(runs["separate"]["jobs"]):
        b, s = runs["batch"], runs["separate"]
        lines.append(f"\nbatch vs separate, {len(b['jobs'])} prompts: {b['wall_s']:.1f} s vs {s['wall_s']:.1f} s "
                     f"({s['wall_s'] - b['wall_s']:.1f} s saved, {s['wall_s'] / b['wall_s']:.2f}x)")
    elif "batch" in runs and startup and (sep := from_startup(startup, mode, len(runs["batch"]["jobs"]))):
        b = runs["batch"]
        lines.append(f"\nseparate, from {startup} ({mode}-fresh, then {mode}-warm; {sep['updates']} updates each): "
                     f"processes {' + '.join(f'{w:.1f}' for w in sep['walls'])} s, start-ups "
                     f"{' + '.join(f'{s:.1f}' for s in sep['startups'])} s")
        if sep["preset"] != preset:
            lines.append(f"  (preset {sep['preset']} there, {preset} in the batch: the times per update differ; the "
                         f"start-ups compare, the walls only roughly)")
        lines.append(f"batch vs separate, {len(b['jobs'])} prompts: {b['wall_s']:.1f} s vs {sep['wall_s']:.1f} s "
                     f"({sep['wall_s'] - b['wall_s']:.1f} s saved, {sep['wall_s'] / b['wall_s']:.2f}x)")
    if "scale-1" in runs and "scale-all" in runs:
        one, every = runs["scale-1"], runs["scale-all"]
        lines.append(f"\nscaling, {len(one['jobs'])} prompts: 1 GPU {one['wall_s']:.1f} s, {every['workers']} GPUs "
                     f"{every['wall_s']:.1f} s ({one['wall_s'] / every['wall_s']:.2f}x)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["batch", "separate", "scale", "report"])
    parser.add_argument("--prompts", type=int, default=2, help="Number of prompts (default 2; scale: 2 per GPU).")
    parser.add_argument("--steps", type=int, default=200, help="Updates per prompt (bench startup's default).")
    parser.add_argument("--compile", default="full", help="prior.compile of every job (default: the fast path's).")
    parser.add_argument("--startup", type=Path, default=Path("/tmp/startup_bench/startup.json"),
                        help="`lucidkit bench startup`'s JSON, for \"separate\" when it was not run here.")
    parser.add_argument("--model", type=Path, default=Path("/tmp/sd21-random"), help="SD folder (random weights).")
    parser.add_argument("--preset", default="fast", help="Preset of every job (tiny: a CPU check of this script).")
    parser.add_argument("--results", type=Path, default=Path("/tmp/batch_bench"))
    args = parser.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    if args.mode != "report" and not (args.model / "model_index.json").exists():
        subprocess.run([sys.executable, str(Path(__file__).with_name("save_random_prior.py")), str(args.model)],
                       check=True)
    if args.mode == "batch":
        result = run_batch(args, "batch", workers=1)
        (args.results / "batch.json").write_text(json.dumps(result, indent=1))
    elif args.mode == "separate":
        run_separate(args)
    elif args.mode == "scale":
        import torch

        gpus = torch.cuda.device_count()
        if gpus < 2:
            sys.exit(f"scale needs several GPUs; this machine has {gpus}")
        args.prompts = min(2 * gpus, len(PROMPTS)) if args.prompts == 2 else args.prompts
        for name, workers in (("scale-1", 1), ("scale-all", None)):
            result = run_batch(args, name, workers)
            (args.results / f"{name}.json").write_text(json.dumps(result, indent=1))
    text = report(args.results, args.startup, args.compile, args.preset)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "batch_bench.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
