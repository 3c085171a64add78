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


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("images", required=False, type=click.Path())
@click.option("--token", help="Rare word that names the subject (default 'sks').")
@click.option("--class-word", help="What the subject is, e.g. 'dog' (instance prompt 'a sks dog', class 'a dog').")
@click.option("--prompt", help="The whole instance prompt instead of token + class word.")
@click.option("--model", help="Prior: 'toy' (default, shipped), 'sd21-base', 'sd15', a diffusers folder, "
              "a .safetensors file or a hub id. Generate with the same prior.")
@options.preset
@click.option("--rank", type=int, help="LoRA rank (lora.rank).")
@click.option("--learning-rate", "--lr", "learning_rate", type=float, help="Learning rate (train.learning_rate).")
@click.option("--steps", type=int, help="Optimiser steps (train.steps).")
@click.option("--batch-size", type=int, help="Photos per step (train.batch_size).")
@click.option("--resolution", type=int, help="Training image side in pixels (default: the prior's).")
@options.seed
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
              help="Frozen weights and autocast: auto = bf16 on CUDA, fp32 on CPU; LoRA matrices train in fp32.")
@click.option("--train-text-encoder/--no-train-text-encoder", default=None, help="Also adapt the text encoder.")
@click.option("--prior-preservation/--no-prior-preservation", default=None,
              help="Train on class images drawn by the prior too (keeps the class intact).")
@click.option("--class-prompt", help="Prompt of the class images (default 'a <class word>').")
@click.option("--num-class-images", type=int, help="Number of class images (prior_preservation.num_images).")
@click.option("--validation-prompt", "validation_prompts", multiple=True,
              help="Prompt to sample into the preview grids (repeatable; default the instance prompt).")
@click.option("--validation-every", type=int, help="Write a preview grid every N steps (0 = only at the end).")
@click.option("--checkpoint-every", type=int, help="Write checkpoint.pt every N steps.")
@click.option("--skip-bad-images", is_flag=True, default=None,
              help="Skip unreadable or too-small photos (each is named) instead of stopping.")
@options.device
@options.sets
@click.option("--out", type=click.Path(), help="Run folder (default outputs/lora-<token>-<time>/).")
@options.resume
@options.quiet
@options.list_fields
def train_lora(images, token, class_word, prompt, model, preset, rank, learning_rate, steps, batch_size, resolution,
               seed, precision, train_text_encoder, prior_preservation, class_prompt, num_class_images,
               validation_prompts, validation_every, checkpoint_every, skip_bad_images, device, sets, out, resume,
               quiet, list_fields):
    """Train a LoRA on photos of one subject in IMAGES (a folder), so that prompts with its token draw it."""
    from pathlib import Path

    from lucidkit import config as config_lib
    from lucidkit.errors import UserError
    from lucidkit.runs import new_run, resume_run

    if resume:
        from lucidkit.lora import run
        from lucidkit.lora.config import TrainLoraConfig

        folder, cfg = resume_run(resume, TrainLoraConfig)
        if images and Path(images).resolve() != Path(cfg.images):
            raise UserError(f"--resume {folder} continues training on {cfg.images}; drop the IMAGES argument "
                            "or start a new run with --out")
        click.echo(f"Resuming {folder} ({cfg.images})", err=True)
        result = run(cfg, folder, resume=True, quiet=quiet, announce=lambda m: click.echo(m, err=True))
    else:
        from lucidkit.lora import resolve_config, run

        explicit = {
            "images": str(Path(images).expanduser().resolve()) if images else None,
            "seed": seed,
            "data": {"token": token, "class_word": class_word, "prompt": prompt, "resolution": resolution,
                     "skip_bad_images": skip_bad_images},
            "prior": {"model": model, "precision": precision, "device": device},
            "lora": {"rank": rank, "train_text_encoder": train_text_encoder},
            "train": {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate},
            "prior_preservation": {"enabled": prior_preservation, "class_prompt": class_prompt,
                                   "num_images": num_class_images},
            "validation": {"prompts": list(validation_prompts) or None, "every": validation_every},
            "output": {"checkpoint_every": checkpoint_every},
        }
        overrides = config_lib.command_overrides(sets, explicit)  # explicit flags win over --set
        cfg = resolve_config(preset, overrides)
        if list_fields:
            click.echo(config_lib.fields_text(cfg))
            return
        if not cfg.images:
            raise UserError("no image folder given; usage: lucidkit train-lora PHOTOS_FOLDER --token sks "
                            "--class-word dog")
        with new_run(out, f"lora-{cfg.data.token or 'subject'}") as folder:
            result = run(cfg, folder, resume=False, quiet=quiet, announce=lambda m: click.echo(m, err=True))
    click.echo(f"Wrote {result.weights} ({result.images} photos, {result.steps} steps, {result.seconds:.1f} s) "
               f"and preview.png, manifest.json in {result.folder}")
