"""What every run command shares: options that set one config field each, the common options, and the start of a
run (a new run folder, or `--resume`).

A field option names the config field it sets: `field("loop.steps", "--steps", type=int)`. Its help is that field's
docstring in the command's config dataclass (`RunCommand(config="module:Class")`, imported only when help is shown),
the command function does not take it as a parameter, and no mapping from flags to fields is written by hand: the
values given are collected by `given_fields(ctx)`. A flag is spelled once.
"""

from __future__ import annotations

import importlib
import re

import click

PRECISIONS = ["auto", "fp32", "bf16", "fp16"]
_GIVEN = "lucidkit.given_fields"


class RunCommand(click.Command):
    """A command whose field options set fields of one config class, named "module:Class" (imported lazily)."""

    def __init__(self, *args, config: str, **kwargs):
        self.config = config
        kwargs.setdefault("context_settings", {"help_option_names": ["-h", "--help"], "max_content_width": 110})
        super().__init__(*args, **kwargs)

    def config_class(self):
        module, name = self.config.split(":")
        return getattr(importlib.import_module(module), name)


class FieldOption(click.Option):
    """An option that sets the config field `field` (a dotted path); help defaults to the field's docstring."""

    def __init__(self, param_decls, field: str, **kwargs):
        self.field = field
        kwargs.setdefault("expose_value", False)
        kwargs.setdefault("default", None)
        kwargs["callback"] = self._store
        super().__init__(param_decls, **kwargs)

    def _store(self, ctx, param, value):
        if value is not None and value != ():
            ctx.meta.setdefault(_GIVEN, {})[self.field] = list(value) if isinstance(value, tuple) else value
        return value

    def get_help_record(self, ctx):
        if not self.help and isinstance(ctx.command, RunCommand):
            from lucidkit.config import field_doc

            self.help = f"{field_doc(ctx.command.config_class(), self.field)} ({self.field})"
        return super().get_help_record(ctx)


def field(path: str, *decls, **kwargs):
    """A Click option that sets the config field `path`."""
    return click.option(*decls, cls=FieldOption, field=path, **kwargs)


def given_fields(ctx: click.Context, **extra) -> dict:
    """The fields set by the field options given on the command line, plus `extra` (dotted path -> value; None
    values are left out), as a nested mapping for `config.command_overrides`."""
    tree: dict = {}
    for path, value in {**ctx.meta.get(_GIVEN, {}), **extra}.items():
        if value is None:
            continue
        *parents, leaf = path.split(".")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree


class Count(click.IntRange):
    """A whole number with a lower bound (`Count(1)`); a bad value reads "'abc' is not a valid integer"."""

    name = "integer"

    def __init__(self, minimum: int):
        super().__init__(min=minimum)


class DeviceType(click.ParamType):
    """'auto', 'cpu', 'cuda' or 'cuda:N', checked when parsed (no torch import)."""

    name = "device"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", value.strip()):
            return value.strip()
        self.fail(f"{value!r} is not a device; expected auto, cpu, cuda or cuda:N", param, ctx)


# options of every run command (generate, edit, edit-image, train-lora)
model = field("prior.model", "--model")
preset = click.option("--preset", help="Preset name or .yaml path (default: 'toy' for the toy prior, else 'default').")
seed = field("seed", "--seed", type=int)
lora = field("prior.lora", "--lora", type=click.Path())
lora_scale = field("prior.lora_scale", "--lora-scale", type=float)
precision = field("prior.precision", "--precision", type=click.Choice(PRECISIONS))
device = field("prior.device", "--device", type=DeviceType())
sets = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                    help="Override any config field (repeatable).")
quiet = click.option("--quiet", is_flag=True, help="Log lines instead of a progress bar.")
threads = click.option("--threads", type=Count(1),
                       help="CPU threads for this run (default: the cores this process may use; give each of several "
                       "runs sharing a machine its share).")
list_fields = click.option("--list-fields", is_flag=True,
                           help="Print every config field with its value and help, then exit.")

# options of the commands that write a run folder (generate, edit, train-lora)
updates = field("loop.steps", "--steps", type=Count(1))
negative = field("guidance.negative_prompt", "--negative")
resume = click.option("--resume", type=click.Path(), help="Continue the run in this folder from its checkpoint; "
                      "--steps (or --set of the step total and output.*) may raise or change what is left.")
overwrite = click.option("--overwrite", is_flag=True,
                         help="Use an --out folder that holds other files (a run folder is never overwritten).")


def group(*decorators):
    """Several options as one decorator, in the order given."""

    def decorate(f):
        for option in reversed(decorators):
            f = option(f)
        return f

    return decorate


def run_options(out_help: str = "Run folder (default outputs/<prompt>-<time>/)."):
    """--set, --out, --resume, --overwrite, --quiet, --threads and --list-fields: the options of every command that
    writes a run folder, as one decorator."""
    return group(sets, click.option("--out", type=click.Path(), help=out_help), resume, overwrite, quiet, threads,
                 list_fields)


# the prior and guidance options of the commands that make an object from a prompt (generate, avatar)
prompt_options = group(
    model, preset, seed, updates,
    field("guidance.method", "--guidance", type=click.Choice(["ism", "sds"])),
    field("guidance.perp_neg", "--perp-neg/--no-perp-neg"),
    negative,
)


def start_run(ctx: click.Context, *, resolve, run, config_cls, name, explicit: dict, preset, sets, out, resume,
              overwrite: bool, quiet: bool, list_fields: bool, threads: int | None = None, check_new=None,
              same_input=None, what=None):
    """A new run into a fresh folder, or `--resume FOLDER`, of a command whose engine function is
    `run(cfg, folder, resume=..., quiet=..., announce=...)`; returns its result, or None when nothing ran.

    resolve(preset, overrides) -> cfg; `explicit` holds the command's own arguments (dotted path -> value);
    `threads` sets torch's CPU threads (`devices.cpu_threads`); check_new(cfg) raises for a new run that cannot
    start; same_input(cfg, explicit) -> a message when arguments given with --resume contradict the run;
    name(cfg) -> the default folder's name; what(cfg) -> how the run is named in messages.
    """
    from lucidkit import config as config_lib
    from lucidkit import runs
    from lucidkit.devices import use_cpu_threads
    from lucidkit.errors import UserError

    say = lambda m: click.echo(m, err=True)  # noqa: E731
    use_cpu_threads(threads)
    overrides = config_lib.command_overrides(sets, given_fields(ctx, **explicit))  # explicit flags win over --set
    if resume:
        if list_fields:
            raise UserError("--list-fields describes a new run's config; the resumed run's is its config.yaml")
        folder, cfg, changed = runs.resume_run(resume, config_cls, overrides)
        contradiction = same_input(cfg, explicit) if same_input else None
        if contradiction:
            raise UserError(f"--resume {folder} {contradiction}; drop it or start a new run with --out")
        if runs.finished(folder, cfg) and not changed:
            say(f"{folder} is finished ({runs.total_steps(cfg)} steps); nothing to do. Raise the total with --steps "
                "to continue it.")
            return None
        say(f"Resuming {folder} ({what(cfg) if what else folder.name})"
            + (f" with {', '.join(f'{k}={v!r}' for k, v in changed.items())}" if changed else ""))
        return run(cfg, folder, resume=True, quiet=quiet, announce=say)
    cfg = resolve(preset, overrides)
    if list_fields:
        click.echo(config_lib.fields_text(cfg))
        return None
    if check_new:
        check_new(cfg)
    with runs.new_run(out, name(cfg), overwrite=overwrite) as folder:
        return run(cfg, folder, resume=False, quiet=quiet, announce=say)
