"""Is the truth a resting point of the guidance? Start `generate` from a toy prompt's ground-truth Gaussians and
watch what the objective does to them (issue 19: generated objects grow past their truth, ISM's more than SDS's).

    python -m tools.quality.fixedpoint "a blue and white striped torus" --method ism --steps 300
    python -m tools.quality.fixedpoint "a red cube" --method sds --set guidance.guidance_scale=15

Runs the toy preset exactly as `bench quality` does (the method's settings, then --set overrides), but the initial
Gaussians are the truth's. Every --every updates it prints the size ratio, silhouette IoU and halo share at the
benchmark's eval cameras (two rings of 8, no azimuth offset: the run starts in the truth's pose); at the end the
benchmark's full score. A guidance whose optimum is the truth keeps size 1.00 and IoU near 1.
"""

from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

import torch

from tools.quality.common import add_run_options, as_parameters, run_task, silhouette_printer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt")
    parser.add_argument("--method", default="ism", help="a bench quality method: ism, sds, ism-perpneg, ...")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    add_run_options(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lucidkit.bench.quality import eval_cameras, render_truth, run_config, score_scene
    from lucidkit.config import parse_overrides
    from lucidkit.generate import GenerateTask
    from lucidkit.toyworld.captions import ground_truth
    from lucidkit.toyworld.evaluator import ToyEvaluator

    cfg = run_config(args.prompt, args.method, args.seed, args.steps, device="cpu", extra=parse_overrides(args.set))
    cams = eval_cameras(cfg.camera)
    _, truth_alpha = render_truth(args.prompt, cams)

    class FromTruth(GenerateTask):
        def initial_splats(self, device):
            return as_parameters(ground_truth(args.prompt), device)  # raw parameters in the engine's layout

    measure = silhouette_printer(cams, truth_alpha, args.every, args.steps)
    print(f"{args.prompt} | {args.method} {' '.join(args.set)} | {args.steps} updates from the truth")
    task = FromTruth(cfg)
    measure(SimpleNamespace(step=0, splats=task.initial_splats("cpu")))  # the truth itself: size 1, IoU 1
    splats = run_task(task, args.out, [measure])
    s = score_scene(splats, args.prompt, args.method, cfg.camera, ToyEvaluator.load(), 0.0)
    print(f"final: acc {s.prompt_accuracy:.2f}  PSNR {s.psnr:.2f}  SSIM {s.ssim:.3f}  IoU {s.silhouette_iou:.2f}  "
          f"size {s.size_ratio:.2f}  detail {s.detail:.2f}")


if __name__ == "__main__":
    sys.exit(main())
