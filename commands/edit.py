"""`lucidkit edit`: text-guided editing of an existing 3D Gaussian scene. Parses options and calls
`lucidkit.edit.run`; no maths here."""

from __future__ import annotations

import click

from lucidkit.commands import options

EPILOG = """\b
Examples:
  lucidkit edit scene.ply --prompt "a blue cube" --source-prompt "a red cube"      # toy prior (shipped), CPU
  lucidkit edit point_cloud.ply --prompt "a bronze statue of a cat" --source-prompt "a cat" \\
                --model /models/stable-diffusion-2-1-base --up -y --cameras cameras.json --out runs/bronze
  lucidkit edit scene.ply --prompt "a cat wearing a red hat" --region box:-0.3,-0.3,0.2,0.3,0.3,0.8
  lucidkit edit --resume runs/bronze                                              # continue an interrupted run

\b
The input .ply (INRIA 3DGS layout: 3DGS, gsplat, nerfstudio splatfacto exports; SH degree 0-3) is only read.
Outputs in the run folder (outputs/<prompt>-<time>/ unless --out): scene.ply (the input's frame, SH degree and
normals), before_after.mp4, preview.png (before above after), config.yaml, manifest.json, checkpoint.pt.
--region and --cameras use the .ply's own coordinates. Gaussians outside the region are copied unchanged.
Presets: presets/edit/*.yaml (default = SD 2.1-base; toy). Use --list-fields to see every field --set accepts.
"""


@click.command(cls=options.RunCommand, config="lucidkit.edit.config:EditConfig", epilog=EPILOG)
@click.argument("scene", required=False, type=click.Path())
@options.field("prompt", "--prompt", help="Target prompt: what the scene should show after the edit.")
@options.field("source_prompt", "--source-prompt",
               help="What the scene shows now (guides ISM's inversion; DDS needs it).")
@options.field("scene.cameras", "--cameras", type=click.Path())
@options.field("scene.region", "--region")
@options.field("scene.up", "--up", type=click.Choice(["z", "-z", "y", "-y", "x", "-x"]))
@options.field("anchor.strength", "--anchor", type=float)
@options.model
@options.preset
@options.seed
@options.updates
@options.field("guidance.method", "--guidance", type=click.Choice(["ism", "sds", "dds"]))
@options.negative
@options.precision
@options.device
@options.sets
@options.run_folder
@options.resume
@options.overwrite
@options.quiet
@options.threads
@options.list_fields
@click.pass_context
def edit(ctx, scene, preset, sets, out, resume, overwrite, quiet, threads, list_fields):
    """Edit the 3D Gaussian scene SCENE (.ply) toward a text --prompt with Interval Score Matching."""
    from pathlib import Path

    from lucidkit.edit import resolve_config, run
    from lucidkit.edit.config import EditConfig
    from lucidkit.errors import UserError

    def check_new(cfg):
        if not cfg.scene.path:
            raise UserError('no scene to edit: pass the .ply file, e.g. lucidkit edit scene.ply --prompt "a blue cube"')
        if not cfg.prompt.strip():
            raise UserError('the prompt is empty; say what the scene should become, e.g. --prompt "a blue cube"')

    def same_input(cfg, given):
        path = given["scene.path"]
        if path and Path(path) != Path(cfg.scene.path):
            return f"continues the edit of {cfg.scene.path}, not {path}"
        return None

    result = options.start_run(
        ctx, resolve=resolve_config, run=run, config_cls=EditConfig, name=lambda cfg: cfg.prompt,
        explicit={"scene.path": scene}, preset=preset, sets=sets, out=out, resume=resume, overwrite=overwrite,
        quiet=quiet, list_fields=list_fields, threads=threads, check_new=check_new, same_input=same_input,
        what=lambda cfg: f"{cfg.scene.path}: {cfg.prompt!r}")
    if result is not None:
        click.echo(f"Wrote {Path(result.scene)} ({result.gaussians} Gaussians, {result.steps} updates, "
                   f"{result.seconds:.1f} s) and preview.png, before_after.mp4, manifest.json in {result.folder}")
