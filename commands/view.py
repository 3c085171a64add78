"""`lucidkit view`: serve a Gaussian scene in the browser (viser). Parses options and calls
`lucidkit.viewer.serve`."""

from __future__ import annotations

import click

EPILOG = """\b
Examples:
  lucidkit view samples/red-cube.ply                     # then open the printed address
  lucidkit view runs/burger/                             # a run folder: its scene.ply (and preview.png)
  lucidkit view point_cloud.ply --up -y --port 8090      # a COLMAP-frame 3DGS capture
  ssh -L 8080:localhost:8080 me@gpu-box                  # on your laptop, to see a remote machine's viewer

\b
No GPU needed: the browser draws the Gaussians (WebGL). Needs: pip install "lucidkit[view]".
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("path", type=click.Path())
@click.option("--port", type=int, default=8080, show_default=True, help="Port (the next free one if taken).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every network interface).")
@click.option("--up", type=click.Choice(["z", "-z", "y", "-y", "x", "-x"]), default="z", show_default=True,
              help="The scene's up axis (lucidkit scenes are z-up; 3DGS captures are usually -y).")
@click.option("--orbit/--no-orbit", default=True, show_default=True, help="Turn the camera around the scene.")
def view(path, port, host, up, orbit):
    """Show the Gaussian scene PATH (.ply or run folder) in the browser."""
    from lucidkit.viewer import serve

    serve(path, host=host, port=port, up=up, orbit=orbit, say=click.echo)
