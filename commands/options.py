"""Options that every run command (generate, edit, edit-image, train-lora) shares, defined once.

Each is a Click decorator; applying it to several commands gives each its own option object.
"""

from __future__ import annotations

import click

PRECISIONS = ["auto", "fp32", "bf16", "fp16"]

model = click.option("--model", help="Prior: 'toy' (default, shipped), 'sd21-base', 'sd15', a diffusers folder, "
                     "a .safetensors file or a hub id.")
preset = click.option("--preset", help="Preset name or .yaml path (default: 'toy' for the toy prior, else 'default').")
seed = click.option("--seed", type=int, help="Random seed (recorded in the manifest).")
lora = click.option("--lora", type=click.Path(), help="LoRA weights (diffusers format) to attach to the prior.")
lora_scale = click.option("--lora-scale", type=float, help="Strength of the LoRA (default 1.0).")
precision = click.option("--precision", type=click.Choice(PRECISIONS), help="Prior precision.")
device = click.option("--device", help="'auto', 'cpu' or 'cuda[:N]'.")
sets = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                    help="Override any config field (repeatable).")
quiet = click.option("--quiet", is_flag=True, help="Log lines instead of a progress bar.")
list_fields = click.option("--list-fields", is_flag=True,
                           help="Print every config field with its value and help, then exit.")

# the 3D run commands (generate, edit)
updates = click.option("--steps", type=int, help="Number of updates (loop.steps).")
negative = click.option("--negative", help="Negative prompt (the unconditional branch of CFG).")
run_folder = click.option("--out", type=click.Path(), help="Run folder (default outputs/<prompt>-<time>/).")
resume = click.option("--resume", type=click.Path(), help="Continue the run in this folder from its checkpoint.")
