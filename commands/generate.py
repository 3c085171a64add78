"""`lucidkit generate`: text → 3D Gaussians. Parses options and calls `lucidkit.generate.run`; no maths here."""

from __future__ import annotations

import click

from lucidkit.commands import options

EPILOG = """\b
Examples:
  lucidkit generate "a blue and white checkered sphere"               # toy prior (shipped), ~minutes on a CPU
  lucidkit generate "a DSLR photo of a hamburger" --model /models/stable-diffusion-2-1-base
  lucidkit generate "a DSLR photo of a hamburger" --model stabilityai/stable-diffusion-2-1-base \\
                    --preset fast --seed 3 --out runs/burger
  lucidkit generate --resume runs/burger                               # continue an interrupted run
  lucidkit generate "a house" --guidance sds --set guidance.delta_t=50 --set loop.steps=800
  lucidkit generate "a red cube" --export splat,glb                     # also scene.splat, scene.glb

\b
Outputs in the run folder (outputs/<prompt>-<time>/ unless --out): scene.ply (INRIA 3DGS layout),
turntable.mp4, preview.png, config.yaml, manifest.json, checkpoint.pt.
Presets: presets/generate/*.yaml (default = the paper's recipe on SD 2.1-base; fast; toy; tiny).
Use --list-fields to see every field --set accepts.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("prompt", required=False)
@options.model
@options.preset
@options.seed
@options.updates
@click.option("--guidance", type=click.Choice(["ism", "sds"]), help="Score distillation method.")
@click.option("--perp-neg/--no-perp-neg", default=None, help="Perp-Neg view negatives (against multi-face objects).")
@options.negative
@click.option("--tokenizer", type=click.Path(), help="For a single .safetensors --model: a folder with its CLIP "
              "tokenizer (a diffusers model folder or its tokenizer/), when the hub cache has none.")
@options.lora
@options.lora_scale
@options.precision
@options.device
@options.sets
@options.run_folder
@options.resume
@options.quiet
@options.list_fields
@click.option("--export", "export_formats", metavar="NAMES",
              help="At the end, also export scene.ply: splat, ply-compressed, glb, obj, mesh-ply or all "
                   "(comma-separated; see lucidkit export).")
def generate(prompt, model, preset, seed, steps, guidance, perp_neg, negative, tokenizer, lora, lora_scale, precision,
             device, sets, out, resume, quiet, list_fields, export_formats):
    """Generate a 3D Gaussian asset from a text PROMPT with Interval Score Matching."""
    from pathlib import Path

    from lucidkit import config as config_lib
    from lucidkit.errors import UserError
    from lucidkit.generate import GenerateConfig, run
    from lucidkit.runs import new_run, resume_run

    if export_formats:  # a bad format name fails now, not after the run
        from lucidkit.exporters import check_formats

        export_formats = check_formats(export_formats)
    if resume:
        folder, cfg = resume_run(resume, GenerateConfig)
        if prompt and prompt != cfg.prompt:
            raise UserError(f"--resume {folder} continues the prompt {cfg.prompt!r}; drop the PROMPT argument "
                            "or start a new run with --out")
        click.echo(f"Resuming {folder} ({cfg.prompt!r})", err=True)
        result = run(cfg, folder, resume=True, quiet=quiet, announce=lambda m: click.echo(m, err=True))
    else:
        from lucidkit.generate import resolve_config

        explicit = {
            "prompt": prompt, "seed": seed,
            "prior": {"model": model, "tokenizer": tokenizer, "lora": lora, "lora_scale": lora_scale, "precision": precision,
                      "device": device},
            "loop": {"steps": steps},
            "guidance": {"method": guidance, "perp_neg": perp_neg, "negative_prompt": negative},
        }
        overrides = config_lib.command_overrides(sets, explicit)  # explicit flags win over --set
        cfg = resolve_config(preset, overrides)
        if list_fields:
            click.echo(config_lib.fields_text(cfg))
            return
        if not prompt or not prompt.strip():
            raise UserError('the prompt is empty; say what to generate, e.g. lucidkit generate "a red cube"')
        with new_run(out, prompt) as folder:
            result = run(cfg, folder, resume=False, quiet=quiet, announce=lambda m: click.echo(m, err=True))
    click.echo(f"Wrote {Path(result.scene)} ({result.gaussians} Gaussians, {result.steps} updates, "
               f"{result.seconds:.1f} s) and preview.png, turntable, manifest.json in {result.folder}")
    if export_formats:
        from lucidkit.exporters import export_scene

        export_scene(result.scene, export_formats, announce=click.echo)

