"""Where does a generated toy object depart from the truth? Small CPU measurements for docs/quality.md.

    python tools/quality/probe.py cameras                 # apparent size: prior's training cameras vs generate's
    python tools/quality/probe.py truth "a house"         # the evaluator on the ground truth at the eval cameras
    python tools/quality/probe.py compare RUN [RUN...]    # truth | generated side by side (PNG) + metrics
    python tools/quality/probe.py sizes "a house" "a red cube"   # how large the prior draws each object vs its truth

`compare` reads each run folder's `scene.ply` and `config.yaml` (its prompt and camera settings), renders the truth
and the scene at the benchmark's eval cameras (two rings of 8), writes `RUN/compare.png` (rows: truth RGB, generated
RGB, generated alpha, per ring) and prints the benchmark's scores plus what widens a silhouette: the share of the
image covered by a faint halo (0.05 < alpha < 0.5) and the Gaussians' opacity histogram.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def apparent_size(radius: torch.Tensor, fovy_rad: torch.Tensor, object_radius: float) -> torch.Tensor:
    """Object radius as a fraction of the half frame height, for cameras at `radius` with field of view `fovy_rad`."""
    return object_radius / (radius * torch.tan(0.5 * fovy_rad))


def cameras_report(preset: str = "toy", n: int = 20000) -> str:
    """Apparent size of a FIT_RADIUS object under the prior's training cameras, generate's schedule and the eval."""
    from lucidkit.cameras import OrbitSampler
    from lucidkit.generate import resolve_config
    from lucidkit.toyworld.data import sample_cameras
    from lucidkit.toyworld.objects import FIT_RADIUS

    g = torch.Generator().manual_seed(0)
    train = sample_cameras(n, g)
    cfg = resolve_config(preset, {})
    sampler = OrbitSampler(cfg.camera, 64, 64)
    steps = cfg.loop.steps
    per_step = max(1, n // steps)
    gen = [sampler.sample(per_step, s, g) for s in range(steps)]
    gen_r = torch.cat([c.radius for c in gen])
    gen_f = torch.cat([c.fovy_rad for c in gen])
    late = [c for s, c in enumerate(gen) if s >= steps * 2 // 3]
    rows = [("prior's training views", train.radius, train.fovy_rad),
            (f"generate ({preset} preset, all {steps} steps)", gen_r, gen_f),
            ("generate, last third", torch.cat([c.radius for c in late]), torch.cat([c.fovy_rad for c in late]))]
    lines = ["| cameras | radius | fovy (rad) | apparent size p5 / p50 / p95 | share > 0.9 (object touches frame) |",
             "|---|---|---|---|---|"]
    for name, r, f in rows:
        size = apparent_size(r, f, FIT_RADIUS)
        q = torch.quantile(size, torch.tensor([0.05, 0.5, 0.95]))
        lines.append(f"| {name} | {r.min():.2f}–{r.max():.2f} | {f.min():.2f}–{f.max():.2f} | "
                     f"{q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f} | {(size > 0.9).float().mean():.3f} |")
    eval_size = apparent_size(torch.tensor(cfg.camera.eval_radius), torch.tensor(cfg.camera.eval_fovy_rad), FIT_RADIUS)
    lines.append(f"| eval (bench, preview) | {cfg.camera.eval_radius:.2f} | {cfg.camera.eval_fovy_rad:.2f} | "
                 f"{float(eval_size):.2f} | - |")
    return "\n".join(lines)


def truth_report(prompts: list[str]) -> str:
    """The benchmark's scores of the ground truth itself (the best a generated object can get)."""
    from lucidkit.bench.quality import eval_cameras, render_truth
    from lucidkit.cameras import CameraConfig
    from lucidkit.toyworld.evaluator import ToyEvaluator

    evaluator = ToyEvaluator.load()
    cams = eval_cameras(CameraConfig())
    lines = []
    for prompt in prompts:
        rgb, _ = render_truth(prompt, cams)
        predicted = evaluator.probabilities(rgb)["view"].argmax(-1).tolist()
        lines.append(f"{prompt}: accuracy {evaluator.prompt_accuracy(rgb, prompt):.2f}, view consistency "
                     f"{evaluator.view_consistency(rgb, cams.azimuth_deg, prompt):.2f}, predicted views "
                     f"{predicted} at azimuths {[int(a) for a in cams.azimuth_deg.tolist()]}")
    return "\n".join(lines)


def compare_run(folder: Path) -> str:
    """Scores of one run folder against its truth, and `compare.png` beside its scene."""
    from lucidkit import config as config_lib
    from lucidkit.bench.quality import eval_cameras, render_truth, score_scene
    from lucidkit.export import write_png
    from lucidkit.generate import GenerateConfig
    from lucidkit.runs import render_views
    from lucidkit.splat.ply import read_ply
    from lucidkit.toyworld.evaluator import ToyEvaluator

    cfg = config_lib.from_dict(GenerateConfig, config_lib.load_yaml(folder / "config.yaml"))
    splats = read_ply(folder / "scene.ply").splats
    if torch.cuda.is_available():  # render with gsplat where there is one (24 yaw offsets x 16 views)
        splats = {k: v.cuda() for k, v in splats.items()}
    score = score_scene(splats, cfg.prompt, cfg.guidance.method, cfg.camera, ToyEvaluator.load(), 0.0)
    cams = eval_cameras(cfg.camera, score.best_offset_deg)
    truth, _ = render_truth(cfg.prompt, eval_cameras(cfg.camera))
    rgb, alpha, _ = render_views(splats, cams)
    rows = []
    for ring in range(2):
        views = slice(8 * ring, 8 * ring + 8)
        rows += [np.concatenate(list(t[views].numpy()), axis=1)
                 for t in (truth, rgb, alpha.expand(-1, -1, -1, 3))]
    write_png(folder / "compare.png", np.concatenate(rows, axis=0))
    a = alpha[..., 0]
    halo = float(((a > 0.05) & (a < 0.5)).float().mean())
    opacity = torch.sigmoid(splats["opacities"].detach())
    hist = torch.histc(opacity, bins=5, min=0, max=1).int().tolist()
    extent = splats["means"].detach().norm(dim=-1)
    return (f"{cfg.prompt} ({cfg.guidance.method}, {len(opacity)} Gaussians): acc {score.prompt_accuracy:.2f} "
            f"view {score.view_consistency:.2f} psnr {score.psnr:.2f} ssim {score.ssim:.3f} detail {score.detail:.2f} "
            f"iou {score.silhouette_iou:.2f} size {score.size_ratio:.2f} | halo share {halo:.3f} | opacity "
            f"histogram (0-1, 5 bins) {hist} | |mean| p50/p95 {float(extent.median()):.2f}/"
            f"{float(torch.quantile(extent, 0.95)):.2f} | scale p50 {float(torch.exp(splats['scales']).max(-1).values.median()):.4f}")


def foreground(images: torch.Tensor, threshold: float = 0.15) -> torch.Tensor:
    """[N, H, W] bool: pixels that differ from the image's background colour (the median of its four 4x4 corners)."""
    corners = torch.cat([images[:, :4, :4], images[:, :4, -4:], images[:, -4:, :4], images[:, -4:, -4:]], dim=1)
    bg = corners.flatten(1, 2).median(dim=1).values  # [N, 3]
    return (images - bg[:, None, None, :]).abs().amax(-1) > threshold


def sizes_report(prompts: list[str], n: int = 32, steps: int = 30, seed: int = 0) -> str:
    """For each prompt: the share of the image the prior's own samples cover (DDIM, CFG 7.5, no view suffix) against
    the truth rendered from the prior's training cameras, and the size ratio sqrt(prior / truth). A ratio far from 1
    means the prior draws that object at another size than its truth: a 3D result that matches the prior then cannot
    match the truth's size, whatever the engine does."""
    from lucidkit.prior.core import DiffusionPrior
    from lucidkit.prior.sampling import sample_images
    from lucidkit.toyworld.data import render_ground_truth, sample_cameras

    prior = DiffusionPrior.load("toy", device=torch.device("cpu"), dtype="fp32")
    lines = [f"{'prompt':<40}{'prior covers':>14}{'truth covers':>14}{'size ratio':>12}"]
    for prompt in prompts:
        samples = sample_images(prior, [prompt], n, steps, 7.5, seed)  # [n, H, W, 3]
        cams = sample_cameras(n, torch.Generator().manual_seed(seed))
        truth = render_ground_truth(prompt, cams)  # white backgrounds
        a, b = float(foreground(samples).float().mean()), float(foreground(truth).float().mean())
        lines.append(f"{prompt:<40}{a:>14.3f}{b:>14.3f}{(a / max(b, 1e-6)) ** 0.5:>12.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("cameras")
    p.add_argument("--preset", default="toy")
    p = sub.add_parser("truth")
    p.add_argument("prompts", nargs="+")
    p = sub.add_parser("compare")
    p.add_argument("runs", nargs="+", type=Path)
    p = sub.add_parser("sizes")
    p.add_argument("prompts", nargs="+")
    p.add_argument("--n", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.what == "cameras":
        print(cameras_report(args.preset))
    elif args.what == "truth":
        print(truth_report(args.prompts))
    elif args.what == "sizes":
        print(sizes_report(args.prompts, args.n))
    else:
        for run in args.runs:
            print(compare_run(run), flush=True)


if __name__ == "__main__":
    sys.exit(main())
