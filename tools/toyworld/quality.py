"""How good is the toy prior? Sample it through plain `StableDiffusionPipeline` and classify the samples.

    python -m tools.toyworld.quality [--prior samples/toy-prior] [--evaluator samples/toy-evaluator]
                                        [--out docs/results/toy_prior_quality.txt] [--samples 8] [--steps 50]

Prompts: every plain and patterned object of the training world as it is ("a red cube", no view suffix), and the
oriented objects with ", front view", ", side view" and ", back view". Sampling: DDIM, ``--steps`` steps,
classifier-free guidance 7.5 (the empty prompt as unconditional), one fixed seed per sample. The toy evaluator
reads shape, colour(s), pattern and view; the report gives per-prompt and per-attribute accuracy, and for the
oriented objects whether the requested view is shown (a back-view prompt answered with a front is a 2D Janus).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional

import torch

from lucidkit.export import preview_grid, write_png
from lucidkit.prior.sampling import GUIDANCE, load_pipeline, sample_prompts
from lucidkit.toyworld.captions import VIEWS, parse_prompt, with_view
from lucidkit.toyworld.objects import world_objects


def quality_prompts() -> list[str]:
    """Plain and patterned world objects without suffix, oriented objects with each view suffix."""
    prompts = []
    for obj in world_objects():
        if obj.oriented:
            prompts += [with_view(obj.prompt, view) for view in VIEWS]
        else:
            prompts.append(obj.prompt)
    return prompts


def measure_prior(prior_dir: str | Path, evaluator, device: torch.device | str, samples_per_prompt: int = 8,
                  steps: int = 50, seed: int = 0, prompts: Optional[list[str]] = None,
                  grid_path: Optional[Path] = None) -> dict:
    """Sample every prompt, classify, and tally. Returns ``{"rows": [...], "summary": {...}, "settings": {...}}``."""
    device = torch.device(device)
    prompts = prompts or quality_prompts()
    pipe = load_pipeline(prior_dir, device)
    t0 = time.time()
    images = sample_prompts(pipe, prompts, samples_per_prompt, steps, seed)
    sample_seconds = time.time() - t0
    pred = evaluator.predict(images)
    rows = []
    tallies: dict[str, list[bool]] = {k: [] for k in ("shape", "colour", "colour2", "pattern", "all", "view",
                                                      "back_shows_back", "back_shows_front")}
    for p, prompt in enumerate(prompts):
        attrs = parse_prompt(prompt)
        sl = slice(p * samples_per_prompt, (p + 1) * samples_per_prompt)
        row = {"prompt": prompt, "n": samples_per_prompt}
        ok_all = torch.ones(samples_per_prompt, dtype=torch.bool)
        heads = ["shape"] if attrs.oriented else ["shape", "colour", "pattern"] + (
            ["colour2"] if attrs.pattern != "plain" else [])
        for head in heads:
            right = torch.tensor([x == getattr(attrs, head) for x in pred[head][sl]])
            ok_all &= right
            row[head] = float(right.float().mean())
            tallies[head] += right.tolist()
        row["all"] = float(ok_all.float().mean())
        tallies["all"] += ok_all.tolist()
        if attrs.oriented and attrs.view is not None:
            views = pred["view"][sl]
            right = [v == attrs.view for v in views]
            row["view"] = sum(right) / len(right)
            tallies["view"] += right
            if attrs.view == "back":
                tallies["back_shows_back"] += right
                tallies["back_shows_front"] += [v == "front" for v in views]
            row["views_seen"] = {v: views.count(v) for v in VIEWS}
        rows.append(row)
    summary = {k: (sum(v) / len(v) if v else float("nan")) for k, v in tallies.items()}
    summary["n_images"] = len(images)
    summary["sample_seconds"] = sample_seconds
    if grid_path is not None:

        shown = min(samples_per_prompt, 8)
        index = [p * samples_per_prompt + s for p in range(len(prompts)) for s in range(shown)]
        write_png(Path(grid_path), preview_grid(images[index], max_cols=shown * 4))
    settings = {"prior": str(prior_dir), "steps": steps, "guidance": GUIDANCE,
                "scheduler": type(pipe.scheduler).__name__,
                "samples_per_prompt": samples_per_prompt, "seed": seed, "device": str(device),
                "dtype": str(pipe.unet.dtype)}
    return {"rows": rows, "summary": summary, "settings": settings}


def _pct(x) -> str:
    return "   -  " if x is None or x != x else f"{100 * x:5.1f}%"


def write_report(report: dict, path: str | Path, training: Optional[dict] = None,
                 evaluator_accuracy: Optional[dict] = None) -> Path:
    """Write the quality table (and, when given, the training summary and evaluator accuracy) as text."""
    s, st = report["summary"], report["settings"]
    lines = [
        "Toy prior quality: samples from StableDiffusionPipeline classified by the toy evaluator",
        f"settings: {json.dumps(st)}",
        "",
        "summary (share of samples):",
        f"  shape {_pct(s['shape'])}   colour {_pct(s['colour'])}   pattern {_pct(s['pattern'])}   "
        f"second colour {_pct(s['colour2'])}   all attributes {_pct(s['all'])}",
        f"  oriented objects: requested view shown {_pct(s['view'])}; back-view prompts showing the back "
        f"{_pct(s['back_shows_back'])}, showing the front {_pct(s['back_shows_front'])}",
        f"  {s['n_images']} images sampled in {s['sample_seconds']:.1f} s",
        "",
        f"{'prompt':48s} {'n':>3s} {'shape':>6s} {'colour':>6s} {'patt.':>6s} {'col.2':>6s} {'all':>6s} "
        f"{'view':>6s}  views seen",
    ]
    for r in report["rows"]:
        seen = " ".join(f"{k}:{v}" for k, v in r.get("views_seen", {}).items())
        lines.append(f"{r['prompt']:48s} {r['n']:3d} {_pct(r.get('shape'))} {_pct(r.get('colour'))} "
                     f"{_pct(r.get('pattern'))} {_pct(r.get('colour2'))} {_pct(r.get('all'))} "
                     f"{_pct(r.get('view'))}  {seen}")
    if evaluator_accuracy or (training and "evaluator" in training):
        heads = ("heldout_white", "heldout_recipe_backgrounds")
        acc = evaluator_accuracy or {k: training["evaluator"][k] for k in heads}
        lines += ["", "evaluator accuracy on held-out ground-truth renders (per head; 'all' = every applicable head):"]
        for name, heads in acc.items():
            lines.append(f"  {name}: " + "  ".join(f"{k} {_pct(v)}" for k, v in heads.items()))
    if training:
        lines += ["", "training summary:", json.dumps({k: v for k, v in training.items() if k != "quality"},
                                                      indent=1, default=float)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def main(argv=None) -> None:
    from lucidkit.toyworld.evaluator import ToyEvaluator, default_path
    from tools.toyworld.models import folder_size_bytes

    parser = argparse.ArgumentParser(prog="python -m tools.toyworld.quality", description=__doc__.split("\n")[0])
    import lucidkit.samples

    samples = Path(lucidkit.samples.__file__).resolve().parent
    parser.add_argument("--prior", default=str(samples / "toy-prior"))
    parser.add_argument("--evaluator", default=str(default_path()))
    parser.add_argument("--out", default="docs/results/toy_prior_quality.txt")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    evaluator = ToyEvaluator.load(args.evaluator, device=args.device)
    report = measure_prior(args.prior, evaluator, args.device, args.samples, args.steps, args.seed)
    write_report(report, args.out)
    print(json.dumps(report["summary"]), f"prior folder {folder_size_bytes(args.prior) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
