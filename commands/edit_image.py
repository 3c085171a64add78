"""`lucidkit edit-image`: 2D image editing with the score distillation objective. Parses options and calls
`lucidkit.image_edit.run`; no maths here."""

from __future__ import annotations

import click

from lucidkit.commands import options

EPILOG = """\b
Examples:
  lucidkit edit-image cube.png --prompt "a blue cube" --source-prompt "a red cube" --out blue.png   # toy prior
  lucidkit edit-image photo.jpg --prompt "a photo of a cat wearing sunglasses" \\
                      --source-prompt "a photo of a cat" --model /models/stable-diffusion-2-1-base --out cat.png
  lucidkit edit-image photo.jpg --prompt "..." --mask mask.png --out edited.png   # white = may change
  lucidkit edit-image photo.jpg --prompt "..." --guidance dds --steps 300 --seed 2 --out dds.png

\b
Writes the edited image (--out, PNG, the input's size), <out>.progress.png (the input, then the edit as it
goes) and <out>.json (the manifest: prompts, method, seed, timings, the resolved config).
Outside --mask the output is the input, pixel for pixel. With a --source-prompt the presets also keep every
region both prompts describe alike (--auto-mask 0.5; --auto-mask 0 turns it off). Presets:
presets/edit-image/*.yaml (default = SD 2.1-base; toy = the shipped prior). Use --list-fields to see every field
--set accepts.
"""


@click.command(cls=options.RunCommand, config="lucidkit.image_edit:EditImageConfig", epilog=EPILOG)
@click.argument("image", type=click.Path(), required=False)
@options.field("prompt", "--prompt", help="Target prompt: what the edited image should show.")
@options.field("source_prompt", "--source-prompt",
               help="What the input shows (recommended; default: the empty prompt).")
@click.option("--mask", type=click.Path(), help="Mask image of the input's size: white = may change, black = keep.")
@options.field("edit.auto_mask", "--auto-mask", type=click.FloatRange(0, 1),
               help="Change only where --prompt and --source-prompt disagree (DiffEdit's mask; threshold 0-1, "
                    "0 = off; presets: 0.5). Needs --source-prompt.")
@options.field("guidance.method", "--guidance", type=click.Choice(["ism", "sds", "dds"]), help="Method (default ism).")
@options.field("edit.steps", "--steps", type=options.Count(1))
@options.model
@options.preset
@options.seed
@options.field("guidance.negative_prompt", "--negative",
               help="Negative prompt (default: the source prompt is CFG's unconditional branch).")
@options.lora
@options.lora_scale
@options.precision
@options.device
@options.sets
@click.option("--out", type=click.Path(), help="Edited image, .png (default: <image>-edited.png beside the input).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@options.quiet
@options.threads
@options.list_fields
@click.pass_context
def edit_image(ctx, image, mask, preset, sets, out, overwrite, quiet, threads, list_fields):
    """Edit IMAGE toward a text --prompt with Interval Score Matching (or SDS / DDS)."""
    from pathlib import Path

    from lucidkit import config as config_lib
    from lucidkit.devices import use_cpu_threads
    from lucidkit.errors import UserError
    from lucidkit.image_edit import resolve_config, run

    use_cpu_threads(threads)
    cfg = resolve_config(preset, config_lib.command_overrides(sets, options.given_fields(ctx)))
    if list_fields:
        click.echo(config_lib.fields_text(cfg))
        return
    if not image:
        raise UserError("no IMAGE given; usage: lucidkit edit-image photo.png --prompt \"...\" --out edited.png")
    image = Path(image)
    out = Path(out) if out else image.with_name(f"{image.stem}-edited.png")
    result = run(cfg, image, out, Path(mask) if mask else None, overwrite=overwrite, quiet=quiet,
                 announce=lambda m: click.echo(m, err=True))
    paths = result["paths"]
    click.echo(f"Wrote {paths['image']} ({result['steps']} updates, {result['seconds']:.1f} s), "
               f"{paths['progress'].name} and {paths['manifest'].name}")
