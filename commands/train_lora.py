"""`lucidkit train-lora`: DreamBooth-style LoRA personalisation of the prior. Parses options and calls
`lucidkit.lora.run`; no maths here."""

from __future__ import annotations

import click

from lucidkit.commands import options

EPILOG = """\b
Examples:
  lucidkit train-lora photos/ --token sks --class-word dog --model sd21-base --out loras/rex   # GPU, minutes
  lucidkit generate "a sks dog wearing a party hat" --model sd21-base --lora loras/rex --lora-scale 0.8
  lucidkit train-lora samples/lora-subject --token sks --class-word toy --out loras/sks-toy    # toy prior, CPU
  lucidkit generate "a sks toy" --lora loras/sks-toy
  lucidkit train-lora --resume loras/rex                                  # continue an interrupted run

\b
Photos: .jpg/.jpeg/.png/.webp of one subject (4-20 are typical), any size; EXIF orientation is honoured and
each is centre-cropped (or --set data.crop=pad) to the prior's resolution. A name.txt beside name.jpg gives that
photo its own prompt. Prior preservation (on by default) first draws class images ("a dog") with the prior.
Outputs in the run folder: pytorch_lora_weights.safetensors (diffusers format: StableDiffusionPipeline.
load_lora_weights reads it), preview.png and previews/ (validation grids), config.yaml, manifest.json,
checkpoint.pt, class_images/. Presets: presets/train-lora/*.yaml (default = SD recipe; toy).
"""


@click.command(cls=options.RunCommand, config="lucidkit.lora.config:TrainLoraConfig", epilog=EPILOG)
@click.argument("images", required=False, type=click.Path())
@options.field("data.token", "--token", help="Rare word that names the subject (default 'sks').")
@options.field("data.class_word", "--class-word",
               help="What the subject is, e.g. 'dog' (instance prompt 'a sks dog', class 'a dog').")
@options.field("data.prompt", "--prompt", help="The whole instance prompt instead of token + class word.")
@options.field("prior.model", "--model", help="Prior: 'toy' (default, shipped), 'sd21-base', 'sd15', a diffusers "
               "folder, a .safetensors file or a hub id. Generate with the same prior.")
@options.preset
@options.field("lora.rank", "--rank", type=options.Count(1))
@options.field("train.learning_rate", "--learning-rate", "--lr", type=float)
@options.field("train.steps", "--steps", type=options.Count(1))
@options.field("train.batch_size", "--batch-size", type=options.Count(1))
@options.field("data.resolution", "--resolution", type=options.Count(0))
@options.seed
@options.precision
@options.field("lora.train_text_encoder", "--train-text-encoder/--no-train-text-encoder")
@options.field("prior_preservation.enabled", "--prior-preservation/--no-prior-preservation")
@options.field("prior_preservation.class_prompt", "--class-prompt")
@options.field("prior_preservation.num_images", "--num-class-images", type=options.Count(0))
@options.field("validation.prompts", "--validation-prompt", multiple=True,
               help="Prompt to sample into the preview grids (repeatable; default the instance prompt).")
@options.field("validation.every", "--validation-every", type=options.Count(0))
@options.field("output.checkpoint_every", "--checkpoint-every", type=options.Count(0))
@options.field("data.skip_bad_images", "--skip-bad-images", is_flag=True, default=None)
@options.device
@options.sets
@click.option("--out", type=click.Path(), help="Run folder (default outputs/lora-<token>-<time>/).")
@options.resume
@options.overwrite
@options.quiet
@options.threads
@options.list_fields
@click.pass_context
def train_lora(ctx, images, preset, sets, out, resume, overwrite, quiet, threads, list_fields):
    """Train a LoRA on photos of one subject in IMAGES (a folder), so that prompts with its token draw it."""
    from pathlib import Path

    from lucidkit.errors import UserError
    from lucidkit.lora import resolve_config, run
    from lucidkit.lora.config import TrainLoraConfig

    def check_new(cfg):
        if not cfg.images:
            raise UserError("no image folder given; usage: lucidkit train-lora PHOTOS_FOLDER --token sks "
                            "--class-word dog")

    def same_input(cfg, given):
        folder = given["images"]
        if folder and Path(folder) != Path(cfg.images):
            return f"continues training on {cfg.images}, not {folder}"
        return None

    result = options.start_run(
        ctx, resolve=resolve_config, run=run, config_cls=TrainLoraConfig,
        name=lambda cfg: f"lora-{cfg.data.token or 'subject'}",
        explicit={"images": str(Path(images).expanduser().resolve()) if images else None}, preset=preset, sets=sets,
        out=out, resume=resume, overwrite=overwrite, quiet=quiet, list_fields=list_fields, threads=threads,
        check_new=check_new, same_input=same_input, what=lambda cfg: cfg.images)
    if result is not None:
        click.echo(f"Wrote {result.weights} ({result.images} photos, {result.steps} steps, {result.seconds:.1f} s) "
                   f"and preview.png, manifest.json in {result.folder}")
