"""`lucidkit bench`: measurements that print a table and save it (speed at true scale; quality on the toy world)."""

from __future__ import annotations

from pathlib import Path

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

SPEED_EPILOG = """\b
Examples:
  lucidkit bench speed                                   # CUDA: SD 2.1-base shapes, random weights
  lucidkit bench speed --cases fast,naive --steps 20 --out docs/results/speed.json
  lucidkit bench speed --arch tiny --device cpu --steps 2  # a smoke run on a CPU
  lucidkit bench speed --cases avatar,avatar-fast          # lucidkit avatar's update (SD 1.5 + ControlNet)

\b
Each case is timed early (t up to 980), mid-anneal and late (t < 500); "mean ms" weights them over the
recipe's 5000 updates. Random weights measure speed and memory only, never quality.
"""

STARTUP_EPILOG = """\b
Examples:
  python tools/gpu/save_random_prior.py /tmp/sd21-random    # once: SD 2.1-base shapes, random weights
  lucidkit bench startup --model /tmp/sd21-random --out docs/results/startup.json
  lucidkit bench startup --model /tmp/sd21-random --cases graphs,full --steps 100
  lucidkit bench startup --model /tmp/tiny --preset tiny --device cpu --steps 3   # a smoke run on a CPU

\b
Each mode (prior.compile: graphs, regional, encoder, off, full) runs `lucidkit generate` processes: with empty compile
caches (fresh), again with the caches they filled (warm: regional, encoder and full, the modes that compile), and for
full with a cache moved by `lucidkit cache export|import`. Start-up = process start to the first update finished. A case that does not fit --budget is
skipped; the same command again continues with what is missing (results are kept in --work).
"""

QUALITY_EPILOG = """\b
Examples:
  lucidkit bench quality                                 # the full prompt set (one GPU: minutes)
  lucidkit bench quality --prompts 1 --steps 60          # a one-prompt smoke run (CPU)
  lucidkit bench quality --methods ism --variant 'ism-dt25=ism:guidance.delta_t=25' --variant-prompt 'a red cube'
"""


@click.group(context_settings=CONTEXT,
             epilog="\b\nExamples:\n  lucidkit bench speed\n  lucidkit bench startup --model DIR\n  lucidkit bench quality")
def bench():
    """Benchmarks: speed of an ISM update at true scale, start-up of a run, and 3D quality against toy-world ground
    truth."""


@bench.command(epilog=SPEED_EPILOG, context_settings=CONTEXT)
@click.option("--arch", default="sd21-base", show_default=True, help="Architecture: sd21-base, sd15 or tiny.")
@click.option("--device", default="auto", show_default=True, help="auto, cuda or cpu.")
@click.option("--steps", default=10, show_default=True, help="Timed updates per regime (early, mid-anneal, late).")
@click.option("--batch", default=4, show_default=True, help="Views per update (B).")
@click.option("--resolution", default=0, help="Render size; 0 = the architecture's native size.")
@click.option("--gaussians", default=100_000, show_default=True, help="Number of Gaussians.")
@click.option("--cases", default="fast,fast-perpneg,eager,naive,low-memory", show_default=True,
              help="Comma-separated cases: fast (compiled), fast-perpneg, eager (bf16, no compile), naive "
                   "(fp16 eager, release habits), low-memory, graphs, regional and encoder (prior.compile modes); "
                   "avatar, avatar-fast (lucidkit avatar's update: SD 1.5 + a random OpenPose ControlNet, the "
                   "built-in body's skeleton; --arch tiny keeps tiny).")
@click.option("--out", type=click.Path(), help="Save the results as JSON here.")
def speed(arch, device, steps, batch, resolution, gaussians, cases, out):
    """Time one ISM update of the default recipe and its parts; compare with a naive, release-like path."""
    from lucidkit.bench.speed import bench_speed

    check_out(out)
    bench_speed(arch=arch, device=device, steps=steps, batch=batch, resolution=resolution, n_gaussians=gaussians,
                out=out, cases=tuple(c.strip() for c in cases.split(",") if c.strip()))


@bench.command(epilog=STARTUP_EPILOG, context_settings=CONTEXT)
@click.option("--model", required=True, type=click.Path(), help="A diffusers folder (random weights are fine).")
@click.option("--cases", default="graphs,regional,encoder,off,full", show_default=True,
              help="Comma-separated prior.compile modes: graphs, regional, encoder, off, full (run cheapest first).")
@click.option("--steps", default=200, show_default=True, help="Updates per run.")
@click.option("--steps-off", default=100, show_default=True, help="Updates of the eager runs (the slow ones).")
@click.option("--preset", default="default", show_default=True, help="generate preset of every run.")
@click.option("--device", default="cuda", show_default=True, help="cuda, or cpu for a smoke run.")
@click.option("--budget", "budget_s", default=480.0, show_default=True,
              help="Seconds for all cases; a case that would not fit is skipped.")
@click.option("--work", default="/tmp/startup_bench", show_default=True, type=click.Path(),
              help="Run folders, compile caches, logs and the results so far (a later call continues them).")
@click.option("--restart", is_flag=True, help="Forget the results kept in --work.")
@click.option("--out", type=click.Path(), help="Save the results as JSON here (and a .txt table beside it).")
def startup(model, cases, steps, steps_off, preset, device, budget_s, work, restart, out):
    """Start-up (fresh, warm, imported cache) and ms per update of each way of running the prior."""
    from lucidkit.bench.startup import bench_startup

    check_out(out)
    bench_startup(model, modes=tuple(c.strip() for c in cases.split(",") if c.strip()), steps=steps,
                  steps_off=steps_off, preset=preset, device=device, budget_s=budget_s, work=work, out=out,
                  restart=restart)


@bench.command(epilog=QUALITY_EPILOG, context_settings=CONTEXT)
@click.option("--model", default="toy", show_default=True, help="The prior (the toy prior: ground truth is known).")
@click.option("--prompts", "n_prompts", type=int, default=0, help="Use only the first N prompts of the fixed set.")
@click.option("--prompt", "prompt_list", multiple=True, help="Use these prompts instead (repeatable).")
@click.option("--methods", default="ism,sds,ism-perpneg", show_default=True,
              help="Comma-separated: ism, sds, ism-perpneg (ISM with Perp-Neg, on oriented prompts only).")
@click.option("--steps", type=int, help="Updates per run (default: the toy preset's).")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any generate config field.")
@click.option("--jobs", default=1, show_default=True, help="Runs at once, each in its own process (GPU: ~10).")
@click.option("--variant", "variant_list", multiple=True, metavar="NAME=METHOD:KEY=VALUE;...",
              help="An ablation row: METHOD with these overrides, e.g. 'ism-dt25=ism:guidance.delta_t=25'.")
@click.option("--variant-prompt", "variant_prompts", multiple=True,
              help="Run the ablation rows on these prompts only (repeatable; default: every prompt).")
@click.option("--out", default="docs/results/quality.json", show_default=True, type=click.Path(),
              help="Results JSON (a .txt table and the run folders go beside it).")
def quality(model, n_prompts, prompt_list, methods, steps, seed, device, sets, jobs, variant_list, variant_prompts,
            out):
    """Generate the fixed toy prompt set with ISM, SDS and ISM with Perp-Neg; score against ground truth."""
    from lucidkit.bench.quality import PROMPTS, bench_quality, parse_variant
    from lucidkit.config import parse_overrides

    check_out(out)
    prompts = tuple(prompt_list) or (PROMPTS[:n_prompts] if n_prompts else PROMPTS)
    bench_quality(prompts=prompts, methods=tuple(m.strip() for m in methods.split(",") if m.strip()), seed=seed,
                  steps=steps, model=model, device=device, out=out, extra=parse_overrides(sets), jobs=jobs,
                  variants=tuple(parse_variant(v) for v in variant_list), variant_prompts=variant_prompts)


def check_out(out: str | None) -> None:
    """Fail before a long benchmark when its --out file cannot be written (the folder is made if missing)."""
    if out:
        from lucidkit.export import check_writable_dir

        check_writable_dir(Path(out).parent)
