"""Probe: image-space refinement of a generated scene (img2img targets, as DreamGaussian's second stage).

Every update renders the views, partially noises their latents to `strength` of the schedule, denoises them with a
few DDIM steps under classifier-free guidance (the prompt with its view suffix), decodes, and fits the render to that
image with a photometric loss. The prior's samples are crisp where score distillation averages them into a blur;
this asks whether a multi-step target carries that crispness into 3D.

    python tools/quality/refine.py /tmp/cube-ism "a red and yellow striped cube" --steps 200 --out /tmp/cube-refined
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
    parser.add_argument("--strength", type=float, default=0.4)
    parser.add_argument("--denoise-steps", type=int, default=4)
    parser.add_argument("--weight", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lucidkit.bench.quality import run_config, score_scene
    from lucidkit.config import parse_overrides
    from lucidkit.generate import GenerateTask
    from lucidkit.guidance.ism import add_noise, ddim_step
    from lucidkit.guidance.perpneg import guided_noise
    from lucidkit.regularizers import image_regularizers
    from lucidkit.scene_run import run_scene
    from lucidkit.splat.ply import read_ply
    from lucidkit.toyworld.evaluator import ToyEvaluator

    overrides = {"loop": {"steps": args.steps}, "densify": {"stop_iter": 0}}
    from lucidkit.config import deep_merge
    cfg = run_config(args.prompt, "ism", args.seed, args.steps, device="cpu",
                     extra=deep_merge(overrides, parse_overrides(args.set)))
    start = read_ply(args.run / "scene.ply").splats
    before = score_scene(start, args.prompt, "ism", cfg.camera, ToyEvaluator.load(), 0.0)
    print(f"start: acc {before.prompt_accuracy:.2f}  PSNR {before.psnr:.2f}  SSIM {before.ssim:.3f}  "
          f"IoU {before.silhouette_iou:.2f}  size {before.size_ratio:.2f}")

    class Img2ImgTarget:
        def __init__(self, guidance, reg, generator):
            self.g, self.reg, self.gen = guidance, reg, generator

        def __call__(self, out, cams, step, splats):
            g, prior = self.g, self.g.prior
            images = out.rgb.permute(0, 3, 1, 2)  # [B, 3, H, W]
            with torch.no_grad():
                z = prior.encode_images(images.detach(), generator=self.gen)
                T = len(g.alphas)
                t_hi = int(args.strength * (T - 1))
                ts = torch.linspace(t_hi, 0, args.denoise_steps + 1).round().long().tolist()
                noise = torch.randn(z.shape, generator=self.gen)
                x = add_noise(z, noise, g.alphas[ts[0]])
                pos, neg = g.positive_embeddings(cams.azimuth_deg), g.unconditional_embeddings(cams.azimuth_deg)
                for a, b in zip(ts[:-1], ts[1:]):
                    eps = g._eps(torch.cat([x, x]), a, torch.cat([neg, pos]), None).view(2, *x.shape)
                    e = guided_noise(eps[0], eps[1], g.cfg.guidance_scale)
                    x = ddim_step(x, e, g.alphas[a], g.alphas[b] if b > 0 else torch.tensor(1.0))
                target = prior.decode_latents(x)  # [B, 3, H, W]
            loss = (images - target).square().mean() * args.weight
            _, reg = image_regularizers(out.rgb, out.depth, out.alpha, self.reg.tv_rgb, self.reg.tv_disparity)
            return loss + reg + self.reg.scale * torch.exp(splats["scales"]).mean(), {}

    class Refine(GenerateTask):
        def initial_splats(self, device):
            return torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(device)) for k, v in start.items()})

        def objective(self, guidance, state):
            return Img2ImgTarget(guidance, self.cfg.regularizers, state.generator)

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        run_scene(Refine(cfg), folder, quiet=True)
        splats = read_ply(folder / "scene.ply").splats
    s = score_scene(splats, args.prompt, "ism", cfg.camera, ToyEvaluator.load(), 0.0)
    print(f"refined: acc {s.prompt_accuracy:.2f}  PSNR {s.psnr:.2f}  SSIM {s.ssim:.3f}  IoU {s.silhouette_iou:.2f}  "
          f"size {s.size_ratio:.2f}  detail {s.detail:.2f}")


if __name__ == "__main__":
    sys.exit(main())
