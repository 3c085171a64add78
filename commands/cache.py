"""`lucidkit cache export|import`: hand torch.compile's cache of one machine to another of the same kind. Parses
options and calls `lucidkit.compile_cache`; imports no torch."""

from __future__ import annotations

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

EPILOG = """\b
Examples:
  lucidkit cache export compile-cache.tar.gz          # on a machine that has run a compiled prior
  lucidkit cache import compile-cache.tar.gz          # on a fresh machine with the same GPU, torch and Triton
  TORCHINDUCTOR_CACHE_DIR=/scratch/inductor lucidkit cache import compile-cache.tar.gz

\b
The cache is ~/.cache/lucidkit/inductor (under $XDG_CACHE_HOME when set), or TORCHINDUCTOR_CACHE_DIR when set:
the folder where prior.compile=full or regional keeps what it compiled. With it, a first run on a fresh
machine reads the compiled code instead of compiling it (minutes of start-up become about a minute). A cache
is only used by the same GPU model, torch and Triton versions; import says when the versions differ.
"""


@click.group(context_settings=CONTEXT, epilog=EPILOG)
def cache():
    """Export or import the compile cache (compiled UNet and VAE code), e.g. for clusters and containers."""


@cache.command("export", context_settings=CONTEXT, epilog=EPILOG)
@click.argument("file", type=click.Path(dir_okay=False))
def export_command(file):
    """Pack the compile cache into FILE (a .tar.gz; written atomically)."""
    from lucidkit.compile_cache import cache_folder, export_cache

    files, size = export_cache(file)
    click.echo(f"Wrote {file}: {files} files ({size / 2**20:.1f} MiB unpacked) from {cache_folder()}")


@cache.command("import", context_settings=CONTEXT, epilog=EPILOG)
@click.argument("file", type=click.Path(dir_okay=False))
def import_command(file):
    """Unpack FILE (from `lucidkit cache export`) into the compile cache; files already there stay."""
    from lucidkit.compile_cache import cache_folder, import_cache

    files, notes = import_cache(file)
    for note in notes:
        click.echo(f"Note: {file} was {note}", err=True)
    click.echo(f"Imported {files} files into {cache_folder()}")
