"""What can the toy preset's Gaussians become when the answer is known? Run `generate`'s loop exactly as the toy
preset does (init ball, cameras, learning rates, densification, 600 updates, batch 4, random backgrounds) but with
the guidance replaced by a photometric loss against the truth rendered at the same cameras and backgrounds.

    python -m tools.quality.reconstruct "a red and yellow striped cube" --out /tmp/recon-cube
    python -m tools.quality.reconstruct "a house" --set densify.clone_split_scale=0.0105

If this reconstruction is crisp (high IoU and PSNR at the eval cameras), the representation and the optimiser's
settings can hold the object, and what blurs a generated one is the guidance; if it is not, the loop's settings
limit every prior. Prints the benchmark's scores at the end; `probe.py compare OUT` draws truth | result | alpha.
"""

from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

import torch

from tools.quality.common import add_run_options, run_task, silhouette_printer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt")
    parser.add_argument("--steps", type=int, default=None, help="updates (default: the preset's)")
    parser.add_argument("--every", type=int, default=100)
    add_run_options(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lucidkit.bench.quality import eval_cameras, render_truth, run_config, score_scene
    from lucidkit.config import parse_overrides
    from lucidkit.generate import GenerateTask
    from lucidkit.regularizers import image_regularizers
    from lucidkit.toyworld.captions import ground_truth
    from lucidkit.toyworld.data import render_splats
    from lucidkit.toyworld.evaluator import ToyEvaluator

    cfg = run_config(args.prompt, "ism", args.seed, args.steps, device="cpu", extra=parse_overrides(args.set))
    steps = cfg.loop.steps
    cams = eval_cameras(cfg.camera)
    _, truth_alpha = render_truth(args.prompt, cams)
    truth = ground_truth(args.prompt)

    class Photometric:
        """Mean squared error to the truth at the update's cameras and backgrounds, plus the recipe's regularisers."""

        def __init__(self, reg):
            self.reg = reg

        def __call__(self, out, cams, step, splats):
            with torch.no_grad():
                target, _ = render_splats(truth, cams, out.info["backgrounds"])  # [B, H, W, 3]
            loss = (out.rgb - target).square().mean() * 1000
            _, reg = image_regularizers(out.rgb, out.depth, out.alpha, self.reg.tv_rgb, self.reg.tv_disparity)
            return loss + reg + self.reg.scale * torch.exp(splats["scales"]).mean(), {}

    class Reconstruct(GenerateTask):
        def objective(self, guidance, state):
            return Photometric(self.cfg.regularizers)

    measure = silhouette_printer(cams, truth_alpha, args.every, steps)
    print(f"{args.prompt} | reconstruction {' '.join(args.set)} | {steps} updates")
    splats = run_task(Reconstruct(cfg), args.out, [measure])
    measure(SimpleNamespace(step=steps, splats=splats))  # the written scene, as the benchmark reads it
    s = score_scene(splats, args.prompt, "ism", cfg.camera, ToyEvaluator.load(), 0.0)
    opacity = torch.sigmoid(splats["opacities"].float())
    print(f"final: acc {s.prompt_accuracy:.2f}  PSNR {s.psnr:.2f}  SSIM {s.ssim:.3f}  IoU {s.silhouette_iou:.2f}  "
          f"size {s.size_ratio:.2f}  detail {s.detail:.2f}  opacity<0.2 {float((opacity < 0.2).float().mean()):.2f}")


if __name__ == "__main__":
    sys.exit(main())
