"""`lucidkit export`: a Gaussian scene in web splat formats and as a coloured mesh. Parses options and calls
`lucidkit.exporters.export_scene`; no maths here."""

from __future__ import annotations

import click

EPILOG = """\b
Examples:
  lucidkit export runs/burger/scene.ply --format splat --out burger.splat      # antimatter15 / web viewers
  lucidkit export runs/burger/scene.ply --format ply-compressed                 # PlayCanvas / SuperSplat
  lucidkit export runs/burger/scene.ply --format glb --out burger.glb --faces 20000
  lucidkit export runs/burger/ --format all                                      # every format next to scene.ply
  lucidkit export point_cloud.ply --format obj --up -y                           # a COLMAP-frame 3DGS capture

\b
Formats: splat (.splat), ply-compressed (.compressed.ply), glb, obj, mesh-ply (.mesh.ply); 'all' for every one.
PATH is any INRIA-layout 3DGS .ply (SH degree 0-3) or a lucidkit run folder (its scene.ply). The input is only read.
Splat formats are written -y up (the 3DGS capture frame the web viewers assume); .glb is y-up (glTF);
.obj and mesh .ply keep the input's frame. Units are never changed. Meshes need: pip install "lucidkit[export]".
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("path", type=click.Path())
@click.option("--format", "formats", default="splat", show_default=True, metavar="NAMES",
              help="Comma-separated: splat, ply-compressed, glb, obj, mesh-ply, or all.")
@click.option("--out", type=click.Path(), help="Output file (one format) or folder (default: next to the input).")
@click.option("--faces", type=int, default=50_000, show_default=True, help="Mesh formats: target face count.")
@click.option("--resolution", type=int, default=192, show_default=True,
              help="Mesh formats: density-grid points along the scene's longest side.")
@click.option("--up", type=click.Choice(["z", "-z", "y", "-y", "x", "-x"]), default="z", show_default=True,
              help="The input's up axis (lucidkit scenes are z-up; 3DGS captures are usually -y).")
def export(path, formats, out, faces, resolution, up):
    """Export the Gaussian scene PATH (.ply or run folder) to web splat formats and/or a coloured mesh."""
    from lucidkit.errors import UserError
    from lucidkit.exporters import export_scene

    if resolution < 16:
        raise UserError(f"--resolution {resolution}: use at least 16 grid points")
    export_scene(path, formats, out=out, faces=faces, up=up, resolution=resolution,
                 announce=lambda message: click.echo(message))
