"""Issue 20's toy-world avatar study: does the pose condition make the avatar follow the pose?

    python -m tools.avatar.study OUT [--device cuda] [--jobs 8] [--poses t-pose,arms-down,...] [--random 2]

Runs `lucidkit avatar "a <colour> person" --pose P` (toy prior, toy preset) for every pose under three settings:
  * control    the shipped toy pose ControlNet in the target and CFG calls, inversion steps without it;
  * inversion  the same with the ControlNet also in the inversion steps (`control.in_inversion`, the default);
  * none       no ControlNet (`--controlnet none`): the shape comes from the initial Gaussians alone.
The poses are held out from the ControlNet's training (it saw `pose.random_pose` draws of seed 0): the built-in
named poses, and `--random N` draws of another seed written as pose files. Each pose gets its own palette colour.

Per run (`tools.avatar.measure`): silhouette IoU with the posed body at the benchmark's 16 eval cameras, the size
ratio, the mean colour of the covered pixels and the palette colour nearest to it; and, so that "follows the pose"
is not just "is a person-sized blob", the IoU with every *other* pose's body (the best of them is reported): an
avatar that follows its pose matches its own body better than any other. Writes OUT/study.json and OUT/study.txt.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

SETTINGS = {
    "control": ["--set", "control.in_inversion=false"],
    "inversion": ["--set", "control.in_inversion=true"],
    "none": ["--controlnet", "none"],
}
DEFAULT_POSES = ("t-pose", "arms-down", "a-pose", "walk", "wave")


def random_pose_files(folder: Path, n: int, seed: int = 4242) -> list[str]:
    """`n` random poses of a seed the ControlNet never saw, written as SMPL-X .json files."""
    from lucidkit.body.pose import random_pose
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    paths = []
    for i in range(n):
        path = folder / f"random-{seed}-{i}.json"
        path.write_text(json.dumps(random_pose(g).to_json()))
        paths.append(str(path))
    return paths


def run_one(out: Path, pose: str, colour: str, setting: str, device: str, seed: int, extra: list[str]) -> Path:
    folder = out / setting / Path(pose).stem
    if (folder / "scene.ply").exists():
        return folder
    cmd = [sys.executable, "-m", "lucidkit.commands.cli", "avatar", f"a {colour} person", "--pose", pose,
           "--device", device, "--seed", str(seed), "--quiet", "--threads", "1", "--out", str(folder),
           *SETTINGS[setting], *extra]
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.log", "w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    return folder


def measure_all(runs: list[tuple[str, str, str, Path]]) -> list[dict]:
    """Own-pose IoU, size and colour per run, plus the best IoU against the other poses' bodies."""
    from lucidkit.toyworld.objects import COLOURS
    from tools.avatar.measure import body_masks, measure

    poses = sorted({pose for _, pose, _, _ in runs})
    masks = {pose: body_masks(pose) for pose in poses}
    rows = []
    for setting, pose, colour, folder in runs:
        if not (folder / "scene.ply").exists():
            rows.append({"setting": setting, "pose": pose, "colour": colour, "failed": True})
            continue
        r = measure(folder)
        other = [measure(folder, against=masks[p])["iou"] for p in poses if p != pose]
        rgb = torch.tensor(r["colour"])
        nearest = min(COLOURS, key=lambda name: float((torch.tensor(COLOURS[name]) - rgb).norm()))
        rows.append({"setting": setting, "pose": Path(pose).stem, "colour": colour, "iou": r["iou"],
                     "size": r["size"], "mean_colour": r["colour"], "nearest_colour": nearest,
                     "best_other_pose_iou": max(other) if other else float("nan")})
    return rows


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def table(rows: list[dict]) -> str:
    lines = [f"{'setting':<10}{'pose':<16}{'colour':<8}{'IoU':>6}{'size':>6}{'other':>7}  colour read"]
    for r in rows:
        if r.get("failed"):
            lines.append(f"{r['setting']:<10}{Path(r['pose']).stem:<16}{r['colour']:<8}  failed")
            continue
        lines.append(f"{r['setting']:<10}{r['pose']:<16}{r['colour']:<8}{r['iou']:>6.2f}{r['size']:>6.2f}"
                     f"{r['best_other_pose_iou']:>7.2f}  {r['nearest_colour']}")
    lines.append("")
    for setting in SETTINGS:
        done = [r for r in rows if r["setting"] == setting and not r.get("failed")]
        if not done:
            continue
        follows = sum(r["iou"] > r["best_other_pose_iou"] for r in done)
        colour_ok = sum(r["nearest_colour"] == r["colour"] for r in done)
        lines.append(f"{setting:<10} {len(done)} runs: IoU mean {_mean(done, 'iou'):.3f} (min {min(r['iou'] for r in done):.3f}),"
                     f" size {_mean(done, 'size'):.2f}, own pose beats every other pose in {follows}/{len(done)},"
                     f" colour right in {colour_ok}/{len(done)}")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--device", default="auto")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--poses", default=",".join(DEFAULT_POSES))
    p.add_argument("--random", type=int, default=0, help="also this many random held-out poses")
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default=None, help="avatar preset (default: the toy preset)")
    p.add_argument("--steps", type=int, default=None)
    args = p.parse_args(argv)
    from lucidkit.toyworld.objects import COLOURS

    poses = [x for x in args.poses.split(",") if x] + random_pose_files(args.out / "poses", args.random)
    colours = list(COLOURS)
    jobs = [(s, pose, colours[i % len(colours)]) for i, pose in enumerate(poses) for s in args.settings.split(",")]
    extra = (["--preset", args.preset] if args.preset else []) + (["--steps", str(args.steps)] if args.steps else [])
    with ThreadPoolExecutor(args.jobs) as pool:
        folders = list(pool.map(lambda j: run_one(args.out, j[1], j[2], j[0], args.device, args.seed, extra), jobs))
    rows = measure_all([(s, pose, colour, f) for (s, pose, colour), f in zip(jobs, folders)])
    text = table(rows)
    print(text)
    (args.out / "study.json").write_text(json.dumps(rows, indent=1))
    (args.out / "study.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
