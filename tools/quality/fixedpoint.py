"""Is the truth a resting point of the guidance? Start `generate` from a toy prompt's ground-truth Gaussians and
watch what the objective does to them (issue 19: generated objects grow past their truth, ISM's more than SDS's).

    python tools/quality/fixedpoint.py "a blue and white striped torus" --method ism --steps 300
    python tools/quality/fixedpoint.py "a red cube" --method sds --set guidance.guidance_scale=15

Runs the toy preset exactly as `bench quality` does (the method's settings, then --set overrides), but the initial
Gaussians are the truth's. Every --every updates it prints the size ratio, silhouette IoU and halo share at the
benchmark's eval cameras (two rings of 8, no azimuth offset: the run starts in the truth's pose); at the end the
benchmark's full score. A guidance whose optimum is the truth keeps size 1.00 and IoU near 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt")
    parser.add_argument("--method", default="ism", help="a bench quality method: ism, sds, ism-perpneg, ...")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="keep the run folder here (for `probe.py compare`)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lucidkit.bench.quality import (
        eval_cameras,
        halo_share,
        render_truth,
        run_config,
        score_scene,
        silhouette_iou,
        size_ratio,
    )
    from lucidkit.config import parse_overrides
    from lucidkit.generate import GenerateTask
    from lucidkit.runs import render_views
    from lucidkit.scene_run import run_scene
    from lucidkit.toyworld.captions import ground_truth
    from lucidkit.toyworld.evaluator import ToyEvaluator

    cfg = run_config(args.prompt, args.method, args.seed, args.steps, device="cpu", extra=parse_overrides(args.set))
    cams = eval_cameras(cfg.camera)
    _, truth_alpha = render_truth(args.prompt, cams)

    class FromTruth(GenerateTask):
        def initial_splats(self, device):
            truth = ground_truth(args.prompt)  # raw parameters in the engine's layout
            return torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(device)) for k, v in truth.items()})

    def measure(state, logs=None) -> None:
        if state.step % args.every and state.step != args.steps:
            return
        _, alpha, _ = render_views(state.splats, cams)
        a = alpha[..., 0]
        print(f"step {state.step:4d}  size {size_ratio(a, truth_alpha):.2f}  IoU {silhouette_iou(a, truth_alpha):.2f}  "
              f"halo {halo_share(a):.3f}  gaussians {len(state.splats['means'])}", flush=True)

    print(f"{args.prompt} | {args.method} {' '.join(args.set)} | {args.steps} updates from the truth")
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        task = FromTruth(cfg)
        measure(SimpleNamespace(step=0, splats=task.initial_splats("cpu")))  # the truth itself: size 1, IoU 1
        run_scene(task, folder, quiet=True, callbacks=[measure])
        from lucidkit.splat.ply import read_ply

        splats = read_ply(folder / "scene.ply").splats
    s = score_scene(splats, args.prompt, args.method, cfg.camera, ToyEvaluator.load(), 0.0)
    print(f"final: acc {s.prompt_accuracy:.2f}  PSNR {s.psnr:.2f}  SSIM {s.ssim:.3f}  IoU {s.silhouette_iou:.2f}  "
          f"size {s.size_ratio:.2f}  detail {s.detail:.2f}")


if __name__ == "__main__":
    sys.exit(main())
