"""Probe: the refinement stage (`guidance.refine_from`) run on its own from an existing generate result.

Starts `generate` (toy preset, bench settings) from a run folder's scene.ply with the refinement on from update 1
(0 means none), so each view is fitted to the prior's img2img of its render for --steps updates (no
densification), and prints the benchmark's scores before and after.

    python -m tools.quality.refine /tmp/cube-ism "a red and yellow striped cube" --steps 200 --out /tmp/cube-refined
    python -m tools.quality.refine /tmp/cube-ism "a red and yellow striped cube" --set guidance.refine_strength=0.25
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from tools.quality.common import add_run_options, as_parameters, run_task


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a generate run folder (its scene.ply is the start)")
    parser.add_argument("prompt")
    parser.add_argument("--steps", type=int, default=200)
    add_run_options(parser, threads=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lucidkit.bench.quality import run_config, score_scene
    from lucidkit.config import deep_merge, parse_overrides
    from lucidkit.generate import GenerateTask
    from lucidkit.splat.ply import read_ply
    from lucidkit.toyworld.evaluator import ToyEvaluator

    stage = {"guidance": {"refine_from": 1}, "densify": {"stop_iter": 0}}
    cfg = run_config(args.prompt, "ism", args.seed, args.steps, device="cpu",
                     extra=deep_merge(stage, parse_overrides(args.set)))
    start = read_ply(args.run / "scene.ply").splats

    class FromScene(GenerateTask):
        def initial_splats(self, device):
            return as_parameters(start, device)

    def report(name, splats) -> None:
        s = score_scene(splats, args.prompt, "ism", cfg.camera, ToyEvaluator.load(), 0.0)
        print(f"{name}: acc {s.prompt_accuracy:.2f}  PSNR {s.psnr:.2f}  SSIM {s.ssim:.3f}  IoU {s.silhouette_iou:.2f}  "
              f"size {s.size_ratio:.2f}  detail {s.detail:.2f}", flush=True)

    report("start", start)
    report("refined", run_task(FromScene(cfg), args.out))


if __name__ == "__main__":
    sys.exit(main())
