"""Probe: the refinement stage (`guidance.refine_from`) run on its own from an existing generate result.

Starts `generate` (toy preset, bench settings) from a run folder's scene.ply with the refinement on from update 1
(0 means none), so each view is fitted to the prior's img2img of its render for --steps updates (no
densification), and prints the benchmark's scores before and after.

    python tools/quality/refine.py /tmp/cube-ism "a red and yellow striped cube" --steps 200 --out /tmp/cube-refined
    python tools/quality/refine.py /tmp/cube-ism "a red and yellow striped cube" --set guidance.refine_strength=0.25
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a generate run folder (its scene.ply is the start)")
    parser.add_argument("prompt")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="keep the run folder here (for `probe.py compare`)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lucidkit.bench.quality import run_config, score_scene
    from lucidkit.config import deep_merge, parse_overrides
    from lucidkit.generate import GenerateTask
    from lucidkit.scene_run import run_scene
    from lucidkit.splat.ply import read_ply
    from lucidkit.toyworld.evaluator import ToyEvaluator

    stage = {"guidance": {"refine_from": 1}, "densify": {"stop_iter": 0}}
    cfg = run_config(args.prompt, "ism", args.seed, args.steps, device="cpu",
                     extra=deep_merge(stage, parse_overrides(args.set)))
    start = read_ply(args.run / "scene.ply").splats

    class FromScene(GenerateTask):
        def initial_splats(self, device):
            return torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(device)) for k, v in start.items()})

    def report(name, splats) -> None:
        s = score_scene(splats, args.prompt, "ism", cfg.camera, ToyEvaluator.load(), 0.0)
        print(f"{name}: acc {s.prompt_accuracy:.2f}  PSNR {s.psnr:.2f}  SSIM {s.ssim:.3f}  IoU {s.silhouette_iou:.2f}  "
              f"size {s.size_ratio:.2f}  detail {s.detail:.2f}", flush=True)

    report("start", start)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        run_scene(FromScene(cfg), folder, quiet=True)
        report("refined", read_ply(folder / "scene.ply").splats)


if __name__ == "__main__":
    sys.exit(main())
