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


@click.command(cls=options.RunCommand, config="lucidkit.generate:GenerateConfig", epilog=EPILOG)
@click.argument("prompt", required=False)
@options.prompt_options
@options.field("prior.tokenizer", "--tokenizer", type=click.Path(),
               help="For a single .safetensors --model: a folder with its CLIP tokenizer (a diffusers model folder or "
               "its tokenizer/), when the hub cache has none.")
@options.lora
@options.lora_scale
@options.precision
@options.device
@options.run_options()
@click.option("--export", "export_formats", metavar="NAMES",
              help="At the end, also export scene.ply: splat, ply-compressed, glb, obj, mesh-ply or all "
                   "(comma-separated; see lucidkit export).")
@click.pass_context
def generate(ctx, prompt, preset, sets, out, resume, overwrite, quiet, threads, list_fields, export_formats):
    """Generate a 3D Gaussian asset from a text PROMPT with Interval Score Matching."""
    from lucidkit.errors import UserError
    from lucidkit.generate import GenerateConfig, resolve_config, run

    if export_formats:  # a bad format name fails now, not after the run
        from lucidkit.exporters import check_formats

        export_formats = check_formats(export_formats)

    def check_new(cfg):
        if not cfg.prompt.strip():
            raise UserError('the prompt is empty; say what to generate, e.g. lucidkit generate "a red cube"')

    result = options.start_run(
        ctx, resolve=resolve_config, run=run, config_cls=GenerateConfig, name=lambda cfg: cfg.prompt,
        explicit={"prompt": prompt}, preset=preset, sets=sets, out=out, resume=resume, overwrite=overwrite,
        quiet=quiet, list_fields=list_fields, threads=threads, check_new=check_new,
        what=lambda cfg: repr(cfg.prompt),
        same_input=lambda cfg, given: (f"continues the prompt {cfg.prompt!r}, not {given['prompt']!r}"
                                       if given["prompt"] and given["prompt"] != cfg.prompt else None))
    if result is not None:
        click.echo(f"Wrote {result.scene} ({result.gaussians} Gaussians, {result.steps} updates, "
                   f"{result.seconds:.1f} s) and preview.png, turntable, manifest.json in {result.folder}")
        if export_formats:
            from lucidkit.exporters import export_scene

            export_scene(result.scene, export_formats, announce=click.echo)
