"""`lucidkit avatar`: an SMPL-X body in a pose → a 3D Gaussian avatar guided by an OpenPose ControlNet. Parses options
and calls `lucidkit.avatar.run`; no maths here."""

from __future__ import annotations

import click

from lucidkit.commands import options

EPILOG = """\b
Examples:
  lucidkit avatar "a red person" --pose a-pose                          # toy prior + toy pose ControlNet, CPU
  lucidkit avatar "a knight in shining armour" --pose pose.npz --smplx-models ~/models \\
                  --model /models/sd15 --controlnet /models/control_v11p_sd15_openpose --out runs/knight
  lucidkit avatar "a dancer" --pose amass_walk.npz --frame 120 --model sd15 --controlnet controlnet-openpose
  lucidkit avatar --resume runs/knight                                  # continue an interrupted run

\b
Poses: a built-in name (t-pose, a-pose, arms-down, arms-up, walk, sit, wave), an SMPL-X parameter file (.npz or .json:
global_orient, body_pose, betas, optional hand/jaw/eye poses and expression) or an AMASS-style sequence .npz (poses,
betas, trans) with --frame. The body model is --smplx-models (or $LUCIDKIT_SMPLX_MODELS): a folder with
smplx/SMPLX_NEUTRAL.npz as smplx.create reads it (download from https://smpl-x.is.tue.mpg.de); without one,
lucidkit's built-in body in the same layout.
Outputs in the run folder: scene.ply (z up, the body faces +x), turntable.mp4 (the avatar beside its skeleton
condition), preview.png, config.yaml, manifest.json (with the pose and the body's frame), checkpoint.pt.
Skeleton: the 18 OpenPose body keypoints, and with --hands 21 per hand (default: on for real OpenPose ControlNets, off
for the toy one); face keypoints are not drawn (SMPL-X's face landmarks need the real model's landmark embedding).
Presets: presets/avatar/*.yaml (default = SD 1.5 + OpenPose ControlNet; toy; tiny).
"""


@click.command(cls=options.RunCommand, config="lucidkit.avatar:AvatarConfig", epilog=EPILOG)
@click.argument("prompt", required=False)
@options.field("body.pose", "--pose")
@options.field("body.frame", "--frame", type=options.Count(0))
@options.field("body.smplx_models", "--smplx-models", type=click.Path(), envvar="LUCIDKIT_SMPLX_MODELS")
@options.field("body.gender", "--gender", type=click.Choice(["neutral", "male", "female"]))
@options.field("control.model", "--controlnet")
@options.field("control.scale", "--control-scale", type=float)
@options.field("control.hands", "--hands/--no-hands")
@options.prompt_options
@options.precision
@options.device
@options.run_options()
@click.pass_context
def avatar(ctx, prompt, preset, sets, out, resume, overwrite, quiet, threads, list_fields):
    """Make a 3D Gaussian avatar of a text PROMPT in the pose of an SMPL-X body."""
    from lucidkit.avatar import AvatarConfig, resolve_config, run
    from lucidkit.errors import UserError

    def check_new(cfg):
        if not cfg.prompt.strip():
            raise UserError('the prompt is empty; say who the avatar is, e.g. lucidkit avatar "a red person" '
                            "--pose t-pose")

    result = options.start_run(
        ctx, resolve=resolve_config, run=run, config_cls=AvatarConfig, name=lambda cfg: cfg.prompt,
        explicit={"prompt": prompt}, preset=preset, sets=sets, out=out, resume=resume, overwrite=overwrite,
        quiet=quiet, list_fields=list_fields, threads=threads, check_new=check_new,
        what=lambda cfg: f"{cfg.prompt!r} in {cfg.body.pose}",
        same_input=lambda cfg, given: (f"continues the prompt {cfg.prompt!r}, not {given['prompt']!r}"
                                       if given["prompt"] and given["prompt"] != cfg.prompt else None))
    if result is not None:
        click.echo(f"Wrote {result.scene} ({result.gaussians} Gaussians, {result.steps} updates, "
                   f"{result.seconds:.1f} s) and preview.png, turntable, manifest.json in {result.folder}")
