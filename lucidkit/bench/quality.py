"""`lucidkit bench quality`: what ISM buys over SDS (and Perp-Neg over none), measured against toy-world truth.

For a fixed prompt set (plain, patterned and oriented toy objects) and fixed seeds, each method runs the real
`lucidkit generate` path with the toy preset. Each result is rendered at eval cameras (two rings of 8 views,
polar 90° and 60°, white background) and compared with the ground-truth object rendered at the same cameras:

    prompt accuracy    share of eval views the toy evaluator reads as the prompt's shape, colour(s) and pattern
    view consistency   share of eval views whose predicted view (front/side/back) matches the camera (oriented only)
    multi-face rate    share of back views that show a front: the Janus failure (oriented only)
    PSNR / SSIM        on the object (pixels covered by either render); objects without a front may come out at
                       any yaw, so for them the best over azimuth offsets (every 15°) is taken
    detail             high-frequency (Laplacian) energy of the render relative to the ground truth's, on the
                       object: 1 = as detailed as the truth, < 1 = over-smoothed (what destroys stripes)
    silhouette IoU     intersection over union of the object masks (alpha > 0.5) of the render and the truth,
                       over all eval views, at the pose PSNR picked (objects without a front: best yaw)
    size ratio         the render's linear size over the truth's: sqrt(mask area / the truth's mask area), over
                       all eval views; 1 = the truth's size, 0.5 = half as tall and wide
    time               seconds per prompt (the whole generate run)
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

PROMPTS = (
    "a red cube", "a blue sphere", "a green cylinder", "a yellow cone", "a purple torus", "an orange pyramid",
    "a red and yellow striped cube", "a blue and white checkered sphere", "a green and white striped cylinder",
    "a red and yellow checkered pyramid", "a blue and white striped torus", "a green and white checkered cone",
    "a house", "a penguin",
)
METHODS = ("ism", "sds", "ism-perpneg")
EVAL_VIEWS = 8
EVAL_SIZE = 64
OFFSETS_DEG = tuple(range(0, 360, 15))


# --------------------------------------------------------------------------------------------------------------
# Image metrics (functional). Images [V, H, W, 3] in [0, 1]; masks [V, H, W] bool.
# --------------------------------------------------------------------------------------------------------------


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR in dB over the masked pixels of all views."""
    mse = ((a - b) ** 2).mean(-1)[mask].mean().clamp_min(1e-10)
    return float(10 * torch.log10(1 / mse))


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """[V, H, W] SSIM with a Gaussian window, averaged over colour channels."""
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)  # [V, 3, H, W]
    coords = torch.arange(window, dtype=torch.float32) - window // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum())[None, :] * (g / g.sum())[:, None]  # [w, w]
    kernel = g.expand(3, 1, window, window).to(x)
    blur = lambda z: F.conv2d(z, kernel, padding=window // 2, groups=3)
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(1)


def detail_ratio(render: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> float:
    """Laplacian energy of `render` over that of `truth`, on the masked pixels (1 = same amount of fine detail)."""
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).expand(3, 1, 3, 3)

    def energy(img):
        hf = F.conv2d(img.permute(0, 3, 1, 2), lap.to(img), padding=1, groups=3)  # [V, 3, H, W]
        return (hf**2).mean(1)[mask].mean()

    return float(energy(render) / energy(truth).clamp_min(1e-10))


def silhouette_iou(alpha: torch.Tensor, truth_alpha: torch.Tensor, threshold: float = 0.5) -> float:
    """IoU of the object masks (alpha > threshold) over all views; alphas [V, H, W] or [V, H, W, 1] in [0, 1]."""
    a, b = alpha > threshold, truth_alpha > threshold
    union = (a | b).sum()
    return float((a & b).sum() / union) if union > 0 else 1.0


def size_ratio(alpha: torch.Tensor, truth_alpha: torch.Tensor, threshold: float = 0.5) -> float:
    """Linear size of the rendered object relative to the truth's: sqrt of the ratio of mask areas (alpha >
    threshold) summed over all views. 0 when the render is empty; inf when the truth is."""
    area, truth_area = float((alpha > threshold).sum()), float((truth_alpha > threshold).sum())
    return math.sqrt(area / truth_area) if truth_area > 0 else float("inf")


def halo_share(alpha: torch.Tensor) -> float:
    """Share of the image covered by a faint halo: pixels with 0.05 < alpha < 0.5 (translucent Gaussians that widen
    a silhouette without making it)."""
    return float(((alpha > 0.05) & (alpha < 0.5)).float().mean())


# --------------------------------------------------------------------------------------------------------------
# One run: generate, render at eval cameras, compare
# --------------------------------------------------------------------------------------------------------------


@dataclass
class RunScore:
    prompt: str
    method: str
    prompt_accuracy: float
    view_consistency: float
    multi_face_rate: float
    psnr: float
    ssim: float
    detail: float
    best_offset_deg: float
    seconds: float
    gaussians: int
    silhouette_iou: float = float("nan")
    size_ratio: float = float("nan")


def eval_cameras(camera_cfg, offset_deg: float = 0.0):
    from lucidkit.cameras import orbit_cameras

    az = torch.arange(EVAL_VIEWS, dtype=torch.float32) * (360.0 / EVAL_VIEWS)
    az = torch.cat([az, az])  # two rings
    polar = torch.tensor([90.0] * EVAL_VIEWS + [60.0] * EVAL_VIEWS)
    n = len(az)
    return orbit_cameras(az + offset_deg, polar, torch.full((n,), camera_cfg.eval_radius),
                         torch.full((n,), camera_cfg.eval_fovy_rad), EVAL_SIZE, EVAL_SIZE, camera_cfg.center)


def score_scene(splats, prompt: str, method: str, camera_cfg, evaluator, seconds: float) -> RunScore:
    """Compare a generated scene (engine ParameterDict) with the prompt's ground truth."""
    from lucidkit.runs import render_views
    from lucidkit.toyworld.captions import is_oriented

    cams = eval_cameras(camera_cfg)
    truth, truth_alpha = render_truth(prompt, cams)  # [V, H, W, 3], [V, H, W]
    truth_pixels = (truth < 0.98).any(-1)  # where PSNR looks: the truth's object pixels on white, as before
    rgb, alpha, _ = render_views(splats, cams)
    az = cams.azimuth_deg
    offsets = (0,) if is_oriented(prompt) else OFFSETS_DEG
    best = None
    for off in offsets:
        if off:
            rgb_off, alpha_off, _ = render_views(splats, eval_cameras(camera_cfg, off))
        else:
            rgb_off, alpha_off = rgb, alpha
        mask = truth_pixels | (alpha_off[..., 0] > 0.05)
        value = psnr(rgb_off, truth, mask)
        if best is None or value > best[0]:
            best = (value, off, rgb_off, mask, alpha_off[..., 0])
    value, off, rgb_best, mask, alpha_best = best
    ssim = float(ssim_map(rgb_best, truth)[mask].mean())
    return RunScore(
        prompt=prompt, method=method,
        prompt_accuracy=evaluator.prompt_accuracy(rgb, prompt),
        view_consistency=evaluator.view_consistency(rgb, az, prompt),
        multi_face_rate=evaluator.multi_face_rate(rgb, az, prompt),
        psnr=value, ssim=ssim, detail=detail_ratio(rgb_best, truth, mask), best_offset_deg=float(off),
        seconds=seconds, gaussians=len(splats["means"]),
        silhouette_iou=silhouette_iou(alpha_best, truth_alpha), size_ratio=size_ratio(alpha_best, truth_alpha),
    )


def render_truth(prompt: str, cams) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt's ground truth at `cams` on white: (rgb [V, H, W, 3], alpha [V, H, W]) on the CPU."""
    from lucidkit.toyworld.captions import ground_truth
    from lucidkit.toyworld.data import render_splats

    with torch.no_grad():
        rgb, alpha = render_splats(ground_truth(prompt), cams, torch.ones(len(cams), 3))
    return rgb.cpu(), alpha[..., 0].cpu()


def method_overrides(method: str) -> dict:
    """Guidance settings of a method: `ism` and `sds` as `lucidkit generate` runs them (no Perp-Neg); `ism-perpneg`
    adds Perp-Neg's view negatives (it is run on oriented prompts only: the others have no view to get wrong)."""
    return {"guidance": {"method": "sds" if method == "sds" else "ism", "perp_neg": method == "ism-perpneg"}}


def run_config(prompt: str, method: str, seed: int, steps: int | None, model: str = "toy", device: str = "auto",
               extra: dict | None = None):
    """The generate config of one benchmark run: the toy preset, `method`'s settings, then `extra` overrides; no
    turntable, previews or checkpoints."""
    from lucidkit.config import deep_merge
    from lucidkit.generate import resolve_config

    overrides = {"prompt": prompt, "seed": seed, "prior": {"model": model, "device": device},
                 "output": {"turntable_frames": 0, "preview_every": 0, "checkpoint_every": 0}}
    overrides = deep_merge(overrides, method_overrides(method))
    if steps:
        overrides = deep_merge(overrides, {"loop": {"steps": steps}})
    return resolve_config("toy", deep_merge(overrides, extra or {}))


def run_one(prompt: str, method: str, seed: int, steps: int | None, model: str, device: str, folder: Path,
            evaluator, extra: dict | None = None, label: str | None = None) -> RunScore:
    """Generate `prompt` with `method`'s settings (+ `extra` overrides) and score it; the row is named `label`."""
    from lucidkit.generate import run

    cfg = run_config(prompt, method, seed, steps, model, device, extra)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = run(cfg, folder, quiet=True)
    seconds = time.perf_counter() - t0
    from lucidkit.splat.ply import read_ply

    splats = read_ply(result.scene).splats
    return score_scene(splats, prompt, label or method, cfg.camera, evaluator, seconds)


def _run_job(job: tuple) -> dict:
    """One (prompt, method) run in a worker process (its own prior and evaluator)."""
    prompt, label, method, seed, steps, model, device, folder, extra, threads = job
    from lucidkit.toyworld.evaluator import ToyEvaluator

    torch.set_num_threads(threads)
    return asdict(run_one(prompt, method, seed, steps, model, device, Path(folder), ToyEvaluator.load(), extra,
                          label))


def parse_variant(text: str) -> tuple[str, str, dict]:
    """'NAME=METHOD:KEY=VALUE;KEY=VALUE' → (name, method, overrides): an ablation row, e.g.
    'ism-dt25=ism:guidance.delta_t=25' (values are YAML, as for --set)."""
    from lucidkit.config import ConfigError, parse_overrides

    name, sep, rest = text.partition("=")
    method, _, sets = rest.partition(":")
    if not sep or not name.strip() or method.strip() not in METHODS:
        raise ConfigError(f"--variant expects NAME=METHOD:KEY=VALUE;KEY=VALUE with METHOD one of {', '.join(METHODS)}"
                          f", got {text!r}")
    return name.strip(), method.strip(), parse_overrides([s for s in sets.split(";") if s.strip()])


def bench_quality(prompts=PROMPTS, methods=METHODS, seed: int = 0, steps: int | None = None, model: str = "toy",
                  device: str = "auto", out: str | None = None, extra: dict | None = None, jobs: int = 1,
                  variants=(), variant_prompts=()) -> dict:
    """Run every (prompt, method) pair, print one table, save JSON + text next to `out`.

    `variants`: ablation rows `(name, method, overrides)` (see `parse_variant`), run on `variant_prompts` (default:
    every prompt) in the same worker pool.

    `jobs` > 1 runs pairs in that many worker processes (the toy prior is launch-bound on a GPU, so several runs
    share one GPU well); results are written after every finished run, so a benchmark cut short keeps them.
    """
    import os

    from lucidkit.export import write_json
    from lucidkit.toyworld.captions import is_oriented

    work = Path(out).with_suffix("") if out else Path(tempfile.mkdtemp(prefix="lucidkit-quality-"))
    from lucidkit.config import deep_merge

    def applies(method: str, prompt: str) -> bool:  # Perp-Neg's row only where there is a view to get wrong
        return method != "ism-perpneg" or is_oriented(prompt)

    pairs = [(p, m) for p in prompts for m in methods if applies(m, p)]
    threads = max(1, (os.cpu_count() or 1) // max(jobs, 1))
    todo = [(p, m, m, seed, steps, model, device, str(work / m / _slug(p)), extra, threads) for p, m in pairs]
    for name, method, overrides in variants:
        for p in variant_prompts or prompts:
            if applies(method, p):
                pairs.append((p, name))
                todo.append((p, name, method, seed, steps, model, device, str(work / name / _slug(p)),
                             deep_merge(extra or {}, overrides), threads))
    scores: list[RunScore] = []

    def record(score: RunScore) -> None:
        scores.append(score)
        print(format_row(score), flush=True)
        if out:
            write_json(out, {"runs": [asdict(s) for s in scores], "summary": summarise(scores)})

    if jobs <= 1:
        for job in todo:
            torch.set_num_threads(threads)
            record(RunScore(**_run_job(job)))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in as_completed([pool.submit(_run_job, job) for job in todo]):
                record(RunScore(**future.result()))
        order = {pair: i for i, pair in enumerate(pairs)}
        scores.sort(key=lambda s: order[(s.prompt, s.method)])
    results = {"prompts": list(prompts), "methods": list(methods), "seed": seed, "steps": steps,
               "variants": [{"name": n, "method": m, "overrides": o} for n, m, o in variants],
               "runs": [asdict(s) for s in scores], "summary": summarise(scores)}
    table = format_table(results)
    print(table, flush=True)
    if out:
        write_json(out, results)
        Path(out).with_suffix(".txt").write_text(table + "\n")
    return results


def summarise(scores: list[RunScore]) -> dict:
    summary = {}
    for method in dict.fromkeys(s.method for s in scores):
        rows = [s for s in scores if s.method == method]
        oriented = [s for s in rows if not math.isnan(s.view_consistency)]
        mean = lambda xs: statistics.fmean(xs) if xs else float("nan")
        summary[method] = {
            "runs": len(rows),
            "prompt_accuracy": mean([s.prompt_accuracy for s in rows]),
            "view_consistency": mean([s.view_consistency for s in oriented]),
            "multi_face_rate": mean([s.multi_face_rate for s in oriented if not math.isnan(s.multi_face_rate)]),
            "psnr": mean([s.psnr for s in rows]),
            "ssim": mean([s.ssim for s in rows]),
            "detail": mean([s.detail for s in rows]),
            "silhouette_iou": mean([s.silhouette_iou for s in rows]),
            "min_silhouette_iou": min((s.silhouette_iou for s in rows), default=float("nan")),
            "size_ratio": mean([s.size_ratio for s in rows]),
            "seconds_per_prompt": mean([s.seconds for s in rows]),
        }
    return summary


def format_row(s: RunScore) -> str:
    return (f"{s.method:<14}{s.prompt:<38}{s.prompt_accuracy:>6.2f}{_f(s.view_consistency):>7}"
            f"{_f(s.multi_face_rate):>7}{s.psnr:>7.2f}{s.ssim:>7.3f}{s.detail:>7.2f}{_f(s.silhouette_iou):>7}"
            f"{_f(s.size_ratio):>7}{s.seconds:>8.1f}")


def format_table(results: dict) -> str:
    head = (f"{'method':<14}{'prompt':<38}{'acc':>6}{'view':>7}{'janus':>7}{'psnr':>7}{'ssim':>7}{'detail':>7}"
            f"{'iou':>7}{'size':>7}{'sec':>8}")
    lines = ["lucidkit bench quality — toy world, seed %s, steps %s" % (results["seed"], results["steps"] or "preset"),
             head]
    lines += [format_row(RunScore(**r)) for r in results["runs"]]
    lines.append("")
    lines.append(f"{'method':<14}{'runs':>5}{'acc':>7}{'view':>7}{'janus':>7}{'psnr':>7}{'ssim':>7}{'detail':>7}"
                 f"{'iou':>7}{'min iou':>8}{'size':>7}{'sec/prompt':>11}")
    for method, m in results["summary"].items():
        lines.append(f"{method:<14}{m['runs']:>5}{m['prompt_accuracy']:>7.2f}{_f(m['view_consistency']):>7}"
                     f"{_f(m['multi_face_rate']):>7}{m['psnr']:>7.2f}{m['ssim']:>7.3f}{m['detail']:>7.2f}"
                     f"{_f(m['silhouette_iou']):>7}{_f(m['min_silhouette_iou']):>8}{_f(m['size_ratio']):>7}"
                     f"{m['seconds_per_prompt']:>11.1f}")
    return "\n".join(lines)


def _f(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}"


def _slug(text: str) -> str:
    from lucidkit.runs import slugify

    return slugify(text)
