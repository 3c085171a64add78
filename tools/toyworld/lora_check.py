"""Does `train-lora` teach the toy prior a subject? Before/after numbers on the toy world, with the toy evaluator.

    python tools/toyworld/lora_check.py all                      # every phase, then the report (~10 min on 2 CPU cores)
    python tools/toyworld/lora_check.py train|before|after|generate-before|generate-after|report

Each phase is short (under ~3 minutes on 2 cores), so a shared CPU can interleave them; each writes
<work>/<phase>.json and `report` writes docs/results/lora_check.txt from them.

1. train            `lucidkit train-lora samples/lora-subject --token sks --class-word toy` (toy preset), timed.
2. before / after   32 DDIM samples per prompt of plain `StableDiffusionPipeline`, without and with
                    `load_lora_weights(<run>)`; the toy evaluator says which samples show the subject (a blue and
                    white checkered sphere): "a sks toy" and its view-suffixed forms (what generate's guidance
                    uses), the subject's own name (the prior's ceiling), and world prompts the LoRA should leave
                    alone (drift).
3. generate-before / generate-after   `lucidkit generate "a sks toy"` (toy preset, 300 updates) without and with
                    `--lora <run> --lora-scale S`; the scene is rendered at 16 eval views (two rings) and scored as
                    in `lucidkit bench quality`: share of views read as the subject, PSNR/SSIM to the subject's
                    ground truth.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from lucidkit.toyworld.lora_subject import PROMPT, SUBJECT, default_folder

SAMPLES = 32
SAMPLE_STEPS = 25
GENERATE_STEPS = 300
DRIFT_PROMPTS = ("a red cube", "a yellow cone", "a green and white striped cylinder")
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results" / "lora_check.txt"


def cli(*args: str) -> None:
    """Run a lucidkit command in-process, as a user types it; a non-zero exit stops the benchmark."""
    from lucidkit.commands.cli import cli as group

    try:
        group.main(list(args), standalone_mode=False)
    except SystemExit as stop:
        if stop.code:
            raise


def phase_train(work: Path, args) -> dict:
    run = work / "lora"
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    cli("train-lora", str(default_folder()), "--token", "sks", "--class-word", "toy", "--out", str(run), "--quiet",
        "--device", args.device, "--seed", str(args.seed))
    seconds = time.perf_counter() - t0
    manifest = json.loads((run / "manifest.json").read_text())
    return {"seconds": seconds, "steps": manifest["steps"], "s_per_step": manifest["timings"]["s_per_step"],
            "timings": manifest["timings"], "bytes": manifest["lora"]["bytes"],
            "parameters": manifest["lora"]["parameters"], "rank": manifest["lora"]["rank"],
            "photos": len(manifest["images"]), "class_images": len(list((run / "class_images").glob("*.png"))),
            "final_loss": manifest["final_loss"], "device": manifest["device"]}


def sample_rates(work: Path, args, with_lora: bool) -> dict:
    from lucidkit.export import preview_grid, write_png
    from lucidkit.prior.sampling import load_pipeline, sample_prompts
    from lucidkit.toyworld.evaluator import ToyEvaluator
    from lucidkit.toyworld.lora_subject import match_rate

    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    evaluator = ToyEvaluator.load(device=device)
    pipe = load_pipeline(default_folder().parent / "toy-prior", device)
    if with_lora:
        pipe.load_lora_weights(str(work / "lora"))  # plain diffusers: the file other tools read
    subject_prompts = [PROMPT] + [f"{PROMPT}, {v} view" for v in ("front", "side", "back")] + [SUBJECT.prompt]
    rates, grid = {}, []
    t0 = time.perf_counter()
    for prompt in subject_prompts + list(DRIFT_PROMPTS):
        images = sample_prompts(pipe, [prompt], SAMPLES, SAMPLE_STEPS, args.seed)  # [S, 64, 64, 3]
        subject = match_rate(images, evaluator)
        own = evaluator.prompt_accuracy(images, prompt) if prompt in DRIFT_PROMPTS else None
        rates[prompt] = {"subject": subject, "own": own}
        grid.append(images[:8])
    write_png(work / f"samples_{'after' if with_lora else 'before'}.png", preview_grid(torch.cat(grid), max_cols=8))
    return {"rates": rates, "samples": SAMPLES, "steps": SAMPLE_STEPS, "seconds": time.perf_counter() - t0}


def generate_score(work: Path, args, with_lora: bool) -> dict:
    from lucidkit.bench.quality import score_scene
    from lucidkit.config import from_dict, load_yaml
    from lucidkit.generate import GenerateConfig
    from lucidkit.splat.ply import read_ply
    from lucidkit.toyworld.evaluator import ToyEvaluator

    out = work / ("generate_after" if with_lora else "generate_before")
    shutil.rmtree(out, ignore_errors=True)
    extra = ["--lora", str(work / "lora"), "--lora-scale", str(args.lora_scale)] if with_lora else []
    t0 = time.perf_counter()
    cli("generate", PROMPT, *extra, "--steps", str(GENERATE_STEPS), "--seed", str(args.seed), "--out", str(out),
        "--quiet", "--device", args.device, "--set", "output.turntable_frames=0")
    seconds = time.perf_counter() - t0
    cfg = from_dict(GenerateConfig, load_yaml(out / "config.yaml"))
    score = score_scene(read_ply(out / "scene.ply").splats, SUBJECT.prompt, "ism", cfg.camera, ToyEvaluator.load(),
                        seconds)
    return {"prompt_accuracy": score.prompt_accuracy, "psnr": score.psnr, "ssim": score.ssim,
            "detail": score.detail, "seconds": seconds, "gaussians": score.gaussians,
            "lora_scale": args.lora_scale if with_lora else None}


def report(work: Path) -> str:
    load = lambda name: json.loads((work / f"{name}.json").read_text()) if (work / f"{name}.json").exists() else None
    train, before, after = load("train"), load("before"), load("after")
    gen_before, gen_after = load("generate-before"), load("generate-after")
    lines = ["train-lora on the toy prior: does 'a sks toy' come to mean the subject (a blue and white checkered "
             "sphere)?", ""]
    if train:
        lines += [f"training   {train['photos']} photos (samples/lora-subject, 64²) + {train['class_images']} class "
                  f"images of 'a toy', {train['steps']} steps, rank {train['rank']} ({train['parameters']} "
                  f"parameters), on {train['device']}",
                  f"           {train['timings']['train_s']:.1f} s training ({1 / train['s_per_step']:.2f} steps/s), "
                  f"{train['timings']['class_images_s']:.1f} s class images, {train['seconds']:.1f} s in all; "
                  f"pytorch_lora_weights.safetensors {train['bytes'] / 1024:.0f} KiB", ""]
    if before and after:
        lines += [f"samples    {before['samples']} per prompt, DDIM {before['steps']} steps, CFG 7.5, plain "
                  "StableDiffusionPipeline (+ load_lora_weights)",
                  f"{'prompt':44s} {'subject before':>15s} {'subject after':>14s} {'own before':>11s} "
                  f"{'own after':>10s}"]
        for prompt, b in before["rates"].items():
            a = after["rates"][prompt]
            own = (f"{100 * b['own']:10.0f}% {100 * a['own']:9.0f}%" if b["own"] is not None else "")
            lines.append(f"{prompt:44s} {100 * b['subject']:14.0f}% {100 * a['subject']:13.0f}% {own}")
        lines += ["subject = share of samples the toy evaluator reads as the subject; own = share read as the "
                  "prompt's own object", "(world prompts the LoRA never saw: how much it drifts the prior)", ""]
    if gen_before or gen_after:
        lines += [f"generate   'a sks toy', toy preset, {GENERATE_STEPS} updates; 16 eval views scored against the "
                  "subject", f"{'run':30s} {'views = subject':>16s} {'psnr':>6s} {'ssim':>6s} {'sec':>6s}"]
        for name, g in (("without LoRA", gen_before), (f"--lora (scale {gen_after and gen_after['lora_scale']})",
                                                       gen_after)):
            if g:
                lines.append(f"{name:30s} {100 * g['prompt_accuracy']:15.0f}% {g['psnr']:6.2f} {g['ssim']:6.3f} "
                             f"{g['seconds']:6.0f}")
    return "\n".join(lines)


PHASES = {
    "train": phase_train,
    "before": lambda work, args: sample_rates(work, args, with_lora=False),
    "after": lambda work, args: sample_rates(work, args, with_lora=True),
    "generate-before": lambda work, args: generate_score(work, args, with_lora=False),
    "generate-after": lambda work, args: generate_score(work, args, with_lora=True),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=[*PHASES, "report", "all"])
    parser.add_argument("--work", default=os.environ.get("LORA_CHECK_WORK", "/tmp/lucidkit-lora-check"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lora-scale", type=float, default=1.0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for phase in (list(PHASES) if args.phase == "all" else [] if args.phase == "report" else [args.phase]):
        result = PHASES[phase](work, args)
        (work / f"{phase}.json").write_text(json.dumps(result, indent=1))
        print(phase, json.dumps(result), file=sys.stderr, flush=True)
    if args.phase in ("report", "all"):
        text = report(work)
        Path(args.out).write_text(text + "\n")
        print(text)


if __name__ == "__main__":
    main()
