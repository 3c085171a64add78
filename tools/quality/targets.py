"""Probe: what the refinement stage fits a scene to. Renders a run folder's scene (or the prompt's truth) at the
benchmark's 16 eval cameras, computes the prior's img2img of each render (`ScoreDistillation.refined_images`) with
the given settings, and prints how the evaluator reads the renders and the targets (prompt accuracy) and their PSNR
against the truth. `--png` writes the rows render | target per ring.

    python -m tools.quality.targets /tmp/pyramid-ism --set guidance.refine_noise=inverted --png /tmp/targets.png
    python -m tools.quality.targets --truth "a red and yellow checkered pyramid" --set guidance.refine_strength=0.25
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from tools.quality.common import add_run_options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, nargs="?", help="a generate run folder (scene.ply, config.yaml)")
    parser.add_argument("--truth", metavar="PROMPT", help="use the prompt's ground truth instead of a run")
    parser.add_argument("--png", type=Path)
    add_run_options(parser, threads=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lucidkit import config as config_lib
    from lucidkit.bench.quality import eval_cameras, psnr, render_truth
    from lucidkit.config import deep_merge, parse_overrides
    from lucidkit.export import write_png
    from lucidkit.generate import GenerateConfig, resolve_config
    from lucidkit.guidance import ScoreDistillation
    from lucidkit.prior.config import PriorConfig, load_prior
    from lucidkit.runs import render_views
    from lucidkit.splat.ply import read_ply
    from lucidkit.toyworld.evaluator import ToyEvaluator

    if args.truth:
        cfg = resolve_config("toy", deep_merge({"prompt": args.truth}, parse_overrides(args.set)))
    else:
        raw = deep_merge(config_lib.load_yaml(args.run / "config.yaml"), parse_overrides(args.set))
        cfg = config_lib.from_dict(GenerateConfig, raw)
    cams = eval_cameras(cfg.camera)
    truth, _ = render_truth(cfg.prompt, cams)  # [V, H, W, 3] on white
    if args.truth:
        renders = truth
    else:
        with torch.no_grad():
            renders, _, _ = render_views(read_ply(args.run / "scene.ply").splats, cams)
    guide = ScoreDistillation(load_prior(PriorConfig(model=cfg.prior.model, device="cpu")), cfg.prompt, cfg.guidance)
    g = torch.Generator().manual_seed(args.seed)
    targets = guide.refined_images(renders.permute(0, 3, 1, 2), cams.azimuth_deg, g).permute(0, 2, 3, 1).clamp(0, 1)

    evaluator, mask = ToyEvaluator.load(), torch.ones(truth.shape[:3], dtype=torch.bool)
    for name, images in (("renders", renders), ("targets", targets)):
        print(f"{name}: acc {evaluator.prompt_accuracy(images, cfg.prompt):.2f}  "
              f"PSNR vs truth {psnr(images, truth, mask):.2f}", flush=True)
    if args.png:
        rows = [np.concatenate(list(t[r * 8:(r + 1) * 8].numpy()), axis=1)
                for r in range(2) for t in (renders, targets)]
        write_png(args.png, np.concatenate(rows, axis=0))


if __name__ == "__main__":
    sys.exit(main())
