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


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("scene", required=False, type=click.Path())
@click.option("--prompt", help="Target prompt: what the scene should show after the edit.")
@click.option("--source-prompt", help="What the scene shows now (guides ISM's inversion; DDS needs it).")
@click.option("--cameras", type=click.Path(), help="Training cameras: INRIA cameras.json or nerfstudio "
              "transforms.json, in the .ply's frame (default: an orbit fitted to the scene).")
@click.option("--region", help="Only Gaussians inside change: box:x0,y0,z0,x1,y1,z1 or sphere:x,y,z,r.")
@click.option("--up", type=click.Choice(["z", "-z", "y", "-y", "x", "-x"]), help="The file's up axis (default z).")
@click.option("--anchor", type=float, help="Strength of the pull toward the original Gaussians (anchor.strength).")
@options.model
@options.preset
@options.seed
@options.updates
@click.option("--guidance", type=click.Choice(["ism", "sds", "dds"]), help="Score distillation method.")
@options.negative
@options.precision
@options.device
@options.sets
@options.run_folder
@options.resume
@options.quiet
@options.list_fields
def edit(scene, prompt, source_prompt, cameras, region, up, anchor, model, preset, seed, steps, guidance, negative,
         precision, device, sets, out, resume, quiet, list_fields):
    """Edit the 3D Gaussian scene SCENE (.ply) toward a text --prompt with Interval Score Matching."""
    from pathlib import Path

    from lucidkit import config as config_lib
    from lucidkit.edit import run
    from lucidkit.edit.config import EditConfig
    from lucidkit.errors import UserError
    from lucidkit.runs import new_run, resume_run

    say = lambda m: click.echo(m, err=True)  # noqa: E731
    if resume:
        folder, cfg = resume_run(resume, EditConfig)
        if scene and Path(scene) != Path(cfg.scene.path):
            raise UserError(f"--resume {folder} continues the edit of {cfg.scene.path}; drop the SCENE argument "
                            "or start a new run with --out")
        say(f"Resuming {folder} ({cfg.scene.path}: {cfg.prompt!r})")
        result = run(cfg, folder, resume=True, quiet=quiet, announce=say)
    else:
        from lucidkit.edit import resolve_config

        explicit = {
            "prompt": prompt, "source_prompt": source_prompt, "seed": seed,
            "scene": {"path": scene, "cameras": cameras, "region": region, "up": up},
            "anchor": {"strength": anchor},
            "prior": {"model": model, "precision": precision, "device": device},
            "loop": {"steps": steps},
            "guidance": {"method": guidance, "negative_prompt": negative},
        }
        overrides = config_lib.command_overrides(sets, explicit)  # explicit flags win over --set
        cfg = resolve_config(preset, overrides)
        if list_fields:
            click.echo(config_lib.fields_text(cfg))
            return
        if not cfg.scene.path:
            raise UserError('no scene to edit: pass the .ply file, e.g. lucidkit edit scene.ply --prompt "a blue cube"')
        if not cfg.prompt.strip():
            raise UserError('the prompt is empty; say what the scene should become, e.g. --prompt "a blue cube"')
        with new_run(out, cfg.prompt) as folder:
            result = run(cfg, folder, resume=False, quiet=quiet, announce=say)
    click.echo(f"Wrote {Path(result.scene)} ({result.gaussians} Gaussians, {result.steps} updates, "
               f"{result.seconds:.1f} s) and preview.png, before_after.mp4, manifest.json in {result.folder}")
