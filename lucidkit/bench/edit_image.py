"""Toy-world check of `edit-image`: does the edit show the target, and does the object stay in place?

Inputs are ground-truth renders of toy objects from eval cameras (white background). Each case edits a source
prompt into a target prompt with ISM, SDS and DDS; the toy evaluator reads the result and the silhouette (pixels
away from the white background) is compared with the input's.

    python -m lucidkit.bench.edit_image --views 4 --out docs/results/edit_image.txt
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

CASES = [
    ("a red cube", "a blue cube"),
    ("a green sphere", "a yellow sphere"),
    ("a blue sphere", "a blue and white striped sphere"),
    ("a purple cylinder", "a red and yellow checkered cylinder"),
]
METHODS = ("ism", "sds", "dds")


def silhouette(images: torch.Tensor, threshold: float = 0.08) -> torch.Tensor:
    """[B, H, W] bool: pixels that differ from the white background by more than `threshold` (max over RGB)."""
    return (1.0 - images).amax(dim=-1) > threshold


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[B] intersection over union of two [B, H, W] bool masks."""
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float().clamp_min(1)
    return inter / union


def toy_inputs(prompt: str, views: int, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """[views, size, size, 3] ground-truth renders of `prompt` on white, and their azimuths [views]."""
    from lucidkit.cameras import CameraConfig, eval_ring
    from lucidkit.toyworld.data import render_ground_truth

    cams = eval_ring(views, CameraConfig(), size, size, polar_deg=75.0)
    # start a little off the axis so the first view is not a flat face
    return render_ground_truth(prompt, cams), cams.azimuth_deg


def run_case(prior, evaluator, source: str, target: str, method: str, views: int, overrides: dict) -> dict:
    from lucidkit import config as config_lib
    from lucidkit.image_edit import edit_image, resolve_config

    images, _ = toy_inputs(source, views)
    rows = []
    t0 = time.perf_counter()
    for i, image in enumerate(images):
        cfg = resolve_config("toy", config_lib.deep_merge(
            {"prompt": target, "source_prompt": source, "seed": i, "guidance": {"method": method}}, overrides))
        rows.append(edit_image(prior, image, cfg).image)
    edited = torch.stack(rows)  # [V, H, W, 3]
    seconds = (time.perf_counter() - t0) / views
    return {
        "source": source, "target": target, "method": method, "views": views,
        "target_rate": evaluator.prompt_accuracy(edited, target),
        "source_rate_before": evaluator.prompt_accuracy(images, source),
        "iou": float(iou(silhouette(edited), silhouette(images)).mean()),
        "seconds_per_edit": seconds,
    }, edited


def main(argv=None) -> None:
    from lucidkit import config as config_lib
    from lucidkit.export import preview_grid, write_png
    from lucidkit.prior.config import PriorConfig, load_prior
    from lucidkit.toyworld.evaluator import ToyEvaluator

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--views", type=int, default=4, help="eval views (input images) per case")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--cases", type=int, default=len(CASES), help="use the first N cases")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override KEY=VALUE")
    ap.add_argument("--out", default="docs/results/edit_image.txt")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    overrides = config_lib.parse_overrides(args.sets)
    prior = load_prior(PriorConfig(model="toy", device="cpu"))
    evaluator = ToyEvaluator.load()
    results, grids = [], []
    for source, target in CASES[:args.cases]:
        for method in args.methods.split(","):
            row, edited = run_case(prior, evaluator, source, target, method, args.views, overrides)
            results.append(row)
            grids.append(edited)
            print(f"{method:4s} {source!r:38s} → {target!r:40s} target {row['target_rate']:.2f}  "
                  f"IoU {row['iou']:.3f}  {row['seconds_per_edit']:.1f} s/edit", flush=True)
    lines = [f"edit-image on the toy prior (CPU), {args.views} views per case, overrides {args.sets}", "",
             "| method | target attribute seen | silhouette IoU | s/edit |", "|---|---|---|---|"]
    for method in args.methods.split(","):
        rows = [r for r in results if r["method"] == method]
        lines.append(f"| {method} | {sum(r['target_rate'] for r in rows) / len(rows):.2f} | "
                     f"{sum(r['iou'] for r in rows) / len(rows):.3f} | "
                     f"{sum(r['seconds_per_edit'] for r in rows) / len(rows):.1f} |")
    lines += ["", "per case:"] + [json.dumps(r) for r in results]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    write_png(out.with_suffix(".png"), preview_grid(torch.cat(grids), max_cols=args.views * len(args.methods.split(","))))
    print("\n".join(lines[:2 + 2 + len(args.methods.split(","))]))


if __name__ == "__main__":
    main()
