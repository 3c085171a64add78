"""Where does a generated toy object depart from the truth? Small CPU measurements for docs/quality.md.

    python tools/quality/probe.py cameras                 # apparent size: prior's training cameras vs generate's
    python tools/quality/probe.py truth "a house"         # the evaluator on the ground truth at the eval cameras
    python tools/quality/probe.py compare RUN [RUN...]    # truth | generated side by side (PNG) + metrics
    python tools/quality/probe.py sizes "a house" "a red cube"   # how large the prior draws each object vs its truth
    python tools/quality/probe.py ceiling --n 16          # the prior's own samples scored against the truth

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
    from lucidkit.bench.quality import eval_cameras, halo_share, render_truth, score_scene
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
    halo = halo_share(alpha[..., 0])
    opacity = torch.sigmoid(splats["opacities"].detach())
    hist = torch.histc(opacity, bins=5, min=0, max=1).int().tolist()
    extent = splats["means"].detach().norm(dim=-1)
    return (f"{cfg.prompt} ({cfg.guidance.method}, {len(opacity)} Gaussians): acc {score.prompt_accuracy:.2f} "
            f"view {score.view_consistency:.2f} psnr {score.psnr:.2f} ssim {score.ssim:.3f} detail {score.detail:.2f} "
            f"iou {score.silhouette_iou:.2f} size {score.size_ratio:.2f} | halo share {halo:.3f} | opacity "
            f"histogram (0-1, 5 bins) {hist} | |mean| p50/p95 {float(extent.median()):.2f}/"
            f"{float(torch.quantile(extent, 0.95)):.2f} | scale p50 {float(torch.exp(splats['scales']).max(-1).values.median()):.4f}")


def background(images: torch.Tensor) -> torch.Tensor:
    """[N, 3] each image's background colour: the median of its four 4x4 corners (the prior draws any colour)."""
    corners = torch.cat([images[:, :4, :4], images[:, :4, -4:], images[:, -4:, :4], images[:, -4:, -4:]], dim=1)
    return corners.flatten(1, 2).median(dim=1).values


def foreground(images: torch.Tensor, threshold: float = 0.15) -> torch.Tensor:
    """[N, H, W] bool: pixels that differ from the image's background colour (`background`)."""
    return (images - background(images)[:, None, None, :]).abs().amax(-1) > threshold


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


# The truth cameras a prior sample is matched against: the prior's main training framing (the recipe's starting
# radius 5.2-5.5 and fovy 0.32-0.60, `toyworld.data.sample_cameras`), polar angles across its 45-105° range and
# an azimuth every 15°. 480 cameras; the best one stands in for the unknown camera the prior drew.
GRID_AZIMUTHS_DEG = tuple(float(a) for a in range(0, 360, 15))
GRID_POLARS_DEG = (60.0, 75.0, 90.0, 105.0)
GRID_FOVYS_RAD = (0.32, 0.39, 0.46, 0.53, 0.60)
GRID_RADIUS = 5.35
# The reference cameras: polar 75°, fovy 0.46, half a grid step (7.5°) off in azimuth, so that the truth seen from
# them scores what a perfect shape scores through the pose search (its own error), and a grey ball the floor.
REFERENCE_OFFSET_DEG = 7.5


def grid_cameras(azimuths_deg=GRID_AZIMUTHS_DEG, polars_deg=GRID_POLARS_DEG, fovys_rad=GRID_FOVYS_RAD):
    """64x64 orbit cameras (the prior's image size) at radius GRID_RADIUS for every (azimuth, polar, fovy)."""
    from lucidkit.cameras import orbit_cameras

    az, polar, fovy = torch.meshgrid(torch.tensor(azimuths_deg), torch.tensor(polars_deg), torch.tensor(fovys_rad),
                                     indexing="ij")
    n = az.numel()
    return orbit_cameras(az.flatten(), polar.flatten(), torch.full((n,), GRID_RADIUS), fovy.flatten(), 64, 64)


def grey_ball() -> dict[str, torch.Tensor]:
    """The toy sphere's Gaussians made flat grey (0.5) at the init's radius (0.6): what the engine starts from."""
    from lucidkit.toyworld.objects import FIT_RADIUS, ToyObject, build

    splats = build(ToyObject("sphere", "red"))
    splats["means"] *= 0.6 / FIT_RADIUS
    splats["scales"] += float(np.log(0.6 / FIT_RADIUS))
    splats["sh0"].zero_()  # rgb = 0.5
    return splats


def best_matches(samples: torch.Tensor, truth_premultiplied: torch.Tensor, truth_alpha: torch.Tensor,
                 allowed: torch.Tensor | None = None) -> torch.Tensor:
    """[N, 4] per sample [N, H, W, 3]: its best PSNR over the truth cameras, the IoU at that camera, the best IoU
    at any camera and the size ratio at the PSNR's camera. Scored as `lucidkit bench quality` scores a 3D result
    (PSNR over the truth's object pixels on white | the sample's foreground; IoU of the masks), with the truth
    (premultiplied [V, H, W, 3], alpha [V, H, W]) composited over the sample's own background colour, since the
    prior draws any background. `allowed` [V] bool limits the cameras."""
    from lucidkit.bench.quality import psnr, silhouette_iou, size_ratio

    truth_pixels = (truth_premultiplied + 1 - truth_alpha[..., None] < 0.98).any(-1)  # [V, H, W], as the bench
    views = range(len(truth_alpha)) if allowed is None else allowed.nonzero()[:, 0].tolist()
    rows = []
    for sample, bg, fg in zip(samples, background(samples), foreground(samples)):
        truth = truth_premultiplied + (1 - truth_alpha[..., None]) * bg  # [V, H, W, 3]
        scores = [(psnr(sample[None], truth[v : v + 1], (truth_pixels[v] | fg)[None]),
                   silhouette_iou(fg[None].float(), truth_alpha[v : v + 1]), v) for v in views]
        value, iou, v = max(scores)
        rows.append((value, iou, max(s[1] for s in scores), size_ratio(fg[None].float(), truth_alpha[v : v + 1])))
    return torch.tensor(rows)


def ceiling_report(prompts: list[str], n: int = 16, steps: int = 30, seed: int = 0) -> str:
    """Can a 3D result that matches the prior reach the truth? For each prompt, `n` prior samples (DDIM, CFG 7.5)
    per caption (plain and each view suffix) are scored against the truth at their best grid camera
    (`best_matches`); for the house and penguin a suffixed sample may only use cameras that show its view, as the
    benchmark pins their yaw. Reference rows: the truth 7.5° off (the ceiling of the pose search itself) and the
    grey ball (the floor). Columns are means over samples; `reach` = share with PSNR >= 15 dB and IoU >= 0.7."""
    from lucidkit.prior.core import DiffusionPrior
    from lucidkit.prior.sampling import sample_images
    from lucidkit.toyworld.captions import VIEWS, ground_truth, is_oriented, views_of_azimuths, with_view
    from lucidkit.toyworld.data import render_splats

    prior = DiffusionPrior.load("toy", device=torch.device("cpu"), dtype="fp32")
    grid = grid_cameras()
    reference = grid_cameras(tuple(a + REFERENCE_OFFSET_DEG for a in GRID_AZIMUTHS_DEG), (75.0,), (0.46,))
    white = torch.ones(len(reference), 3)
    ball = render_splats(grey_ball(), reference, white)[0]
    head = f"{'prompt':<36}| prior: PSNR  IoU  maxIoU size reach | truth+7.5°: PSNR  IoU  size | grey ball: PSNR  IoU  size"
    lines, per_view = [head, "-" * len(head)], {view: [] for view in (None,) + VIEWS}
    fmt = lambda m: f"{m[0]:6.2f} {m[1]:5.2f} {m[3]:5.2f}"
    for prompt in prompts:
        truth = ground_truth(prompt)
        with torch.no_grad():
            premultiplied, alpha = render_splats(truth, grid)  # on black: premultiplied colour
            own = render_splats(truth, reference, white)[0]
        alpha = alpha[..., 0]
        prior_rows = []
        for k, view in enumerate((None,) + VIEWS):
            samples = sample_images(prior, [with_view(prompt, view)], n, steps, 7.5, seed + k)
            allowed = (views_of_azimuths(grid.azimuth_deg) == VIEWS.index(view)) if view and is_oriented(prompt) else None
            prior_rows.append(best_matches(samples, premultiplied, alpha, allowed))
            per_view[view].append(prior_rows[-1].mean(0))
        rows = torch.cat(prior_rows)
        reach = float(((rows[:, 0] >= 15) & (rows[:, 1] >= 0.7)).float().mean())
        m = rows.mean(0)
        lines.append(f"{prompt:<36}| {m[0]:11.2f} {m[1]:4.2f} {m[2]:7.2f} {m[3]:4.2f} {reach:5.2f} | "
                     f"{fmt(best_matches(own, premultiplied, alpha).mean(0)):>21} | "
                     f"{fmt(best_matches(ball, premultiplied, alpha).mean(0)):>20}")
        print(lines[-1], file=sys.stderr, flush=True)  # progress; the table follows on stdout
    lines += ["", "prior samples by caption, mean over prompts: PSNR  IoU  maxIoU size"]
    for view, means in per_view.items():
        m = torch.stack(means).mean(0)
        lines.append(f"  {'no view suffix' if view is None else view + ' view':<42}{m[0]:5.2f} {m[1]:4.2f} {m[2]:7.2f} {m[3]:4.2f}")
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
    p = sub.add_parser("ceiling", help="what the prior's own samples score against the truth (best grid camera)")
    p.add_argument("--prompts", nargs="+", help="default: the benchmark's 14 prompts")
    p.add_argument("--n", type=int, default=16, help="samples per caption (plain and each view suffix)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.what == "cameras":
        print(cameras_report(args.preset))
    elif args.what == "truth":
        print(truth_report(args.prompts))
    elif args.what == "sizes":
        print(sizes_report(args.prompts, args.n))
    elif args.what == "ceiling":
        from lucidkit.bench.quality import PROMPTS

        print(ceiling_report(args.prompts or list(PROMPTS), args.n))
    else:
        for run in args.runs:
            print(compare_run(run), flush=True)


if __name__ == "__main__":
    sys.exit(main())
