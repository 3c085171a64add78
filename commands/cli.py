"""The `lucidkit` command group. Commands are imported only when they run, so `lucidkit --help` stays fast
and imports no torch (Click's LazyGroup pattern)."""

from __future__ import annotations

import importlib
import os
import sys

import click

from lucidkit.errors import UserError

# command name -> "module:function"; one module per command under lucidkit.commands
COMMANDS = {
    "generate": "lucidkit.commands.generate:generate",
    "bench": "lucidkit.commands.bench:bench",
    "edit-image": "lucidkit.commands.edit_image:edit_image",
    "train-lora": "lucidkit.commands.train_lora:train_lora",
    "edit": "lucidkit.commands.edit:edit",
    "avatar": "lucidkit.commands.avatar:avatar",
    "batch": "lucidkit.commands.batch:batch",
    "export": "lucidkit.commands.export:export",
    "view": "lucidkit.commands.view:view",
    "cache": "lucidkit.commands.cache:cache",
}


class LazyGroup(click.Group):
    """A group that maps names to modules and imports a command on first use."""

    def __init__(self, *args, lazy_commands: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module, attr = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's main, with every usage error (a bad option value, an unknown option) as one `Error:` line."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # `lucidkit` alone: the help, as Click prints it
            click.echo(e.format_message())
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"Error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        # Bad input anywhere below becomes one clear line and exit status 2, without a traceback.
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(2)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(package_name="lucidkit")
def cli():
    """lucidkit: text-to-3D generation and editing with Interval Score Matching on 3D Gaussian Splatting.

    \b
    Examples:
      lucidkit generate "a red and yellow striped cube"                 # the shipped toy prior, CPU is fine
      lucidkit generate "a DSLR photo of a hamburger" --model /models/stable-diffusion-2-1-base
      lucidkit generate --resume outputs/a-dslr-photo-of-a-hamburger-20261124-101500
      lucidkit edit samples/red-cube.ply --prompt "a blue cube" --source-prompt "a red cube"
      lucidkit edit-image photo.png --prompt "a blue cube" --source-prompt "a red cube" --out edited.png
      lucidkit train-lora samples/lora-subject --token sks --class-word toy --out loras/sks-toy
      lucidkit avatar "a red person" --pose a-pose
      lucidkit batch prompts.txt --model sd21-base --preset fast --out runs/level1   # every GPU, through Ray
      lucidkit export outputs/a-red-cube-20261124-101500 --format splat,glb
      lucidkit view samples/red-cube.ply
      lucidkit cache export compile-cache.tar.gz                      # compiled code for another GPU machine
    """


def main():
    # Idle OpenMP threads sleep instead of spinning: several runs sharing the cores then do not burn each other's
    # CPU time while they wait (read by the OpenMP runtime when torch first loads, so it is set before that).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cli()


if __name__ == "__main__":
    main()
