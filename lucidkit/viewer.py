"""`lucidkit view`: a Gaussian scene in the browser, served by viser (the optional extra `view`).

viser draws the Gaussians itself in the browser (WebGL, its Gaussian-splat scene node; SH degree 0 colours), so
the machine that serves needs no GPU. The page has an orbit (a turntable around the scene's up axis, on by
default; drag to look around) and a "Reset view" button; for a run folder its `preview.png` (the run's eval
views) is shown in the panel as well, as a fallback where WebGL is not available. Bind to 127.0.0.1 (the
default) and reach it from another machine through an SSH port forward.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from lucidkit.errors import UserError

UP_DIRECTIONS = {"z": "+z", "-z": "-z", "y": "+y", "-y": "-y", "x": "+x", "-x": "-x"}
ORBIT_SECONDS = 20.0  # one turn of the orbit
FOVY_RAD = 0.6  # viser's default field of view is about this (radians)


@dataclass
class SceneView:
    """What the browser draws: Gaussians as centres, covariances, colours, opacities, and a camera orbit."""

    centers: np.ndarray  # [N, 3] float32
    covariances: np.ndarray  # [N, 3, 3] float32
    rgbs: np.ndarray  # [N, 3] float32 in [0, 1]
    opacities: np.ndarray  # [N, 1] float32
    center: np.ndarray  # [3] the orbit's centre: the opacity-weighted robust centre
    radius: float  # the orbit's distance from the centre
    up: np.ndarray  # [3] unit up vector


def require_viser():
    """Import viser, or fail with one line that says how to install it."""
    try:
        import viser
    except ImportError:
        raise UserError('the viewer needs viser: pip install "lucidkit[view]"') from None
    return viser


def scene_view(ply_path: str | Path, up: str = "z") -> SceneView:
    """Read a Gaussian `.ply` (PlyError for bad files) into what viser draws, with an orbit that frames it."""
    import torch

    from lucidkit.exporters.mesh import rotation_matrices
    from lucidkit.splat.ply import read_ply
    from lucidkit.splat.scene import sh0_to_rgb
    from lucidkit.splat.transform import UP_ROTATIONS

    scene = read_ply(ply_path)
    if scene.num_gaussians == 0:
        raise UserError(f"{ply_path}: the scene has no Gaussians")
    s = {k: v.detach().double() for k, v in scene.splats.items()}
    scales = torch.exp(s["scales"])  # [N, 3]
    rot = rotation_matrices(torch.nn.functional.normalize(s["quats"], dim=-1))  # [N, 3, 3]
    cov = rot @ torch.diag_embed(scales**2) @ rot.transpose(1, 2)  # [N, 3, 3]
    opacities = torch.sigmoid(s["opacities"])  # [N]
    means = s["means"]
    solid = means[opacities > 0.5] if bool((opacities > 0.5).any()) else means
    lo, hi = torch.quantile(solid, 0.01, dim=0), torch.quantile(solid, 0.99, dim=0)
    center = 0.5 * (lo + hi)
    half = float(0.5 * (hi - lo).norm().clamp_min(1e-3))  # the robust bounding sphere's radius
    up_vec = torch.tensor(UP_ROTATIONS[up], dtype=torch.float64)[2]  # the file's up axis: the row mapped to +z
    return SceneView(
        centers=means.float().numpy(),
        covariances=cov.float().numpy(),
        rgbs=sh0_to_rgb(s["sh0"][:, 0, :]).clamp(0, 1).float().numpy(),
        opacities=opacities[:, None].float().numpy(),
        center=center.numpy(),
        radius=1.15 * half / math.sin(FOVY_RAD / 2),
        up=up_vec.numpy(),
    )


def orbit_position(view: SceneView, angle_rad: float, elevation_rad: float = 0.35) -> np.ndarray:
    """A camera position on the orbit around `view.up` at `angle_rad`, `elevation_rad` above the horizon."""
    up = view.up
    side = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side)
    front = np.cross(side, up)  # with side and up, a right-handed horizontal basis
    horizontal = math.cos(angle_rad) * front + math.sin(angle_rad) * side
    direction = math.cos(elevation_rad) * horizontal + math.sin(elevation_rad) * up
    return view.center + view.radius * direction


def free_port(host: str, port: int) -> int:
    """`port` if it is free on `host`, else the next free one (up to 50 further)."""
    for candidate in range(port, port + 50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, candidate))
                return candidate
            except OSError:
                continue
    raise UserError(f"no free port from {port} to {port + 49} on {host}; pass --port")


def start_server(view: SceneView, host: str = "127.0.0.1", port: int = 8080, orbit: bool = True,
                 preview: Path | None = None):
    """Start a viser server showing `view`; return (server, stop_event). The orbit runs in a daemon thread."""
    viser = require_viser()
    server = viser.ViserServer(host=host, port=free_port(host, port), verbose=False)
    server.scene.set_up_direction(tuple(float(v) for v in view.up))
    server.scene.add_gaussian_splats("/scene", centers=view.centers, covariances=view.covariances,
                                     rgbs=view.rgbs, opacities=view.opacities)
    orbiting = server.gui.add_checkbox("Orbit", initial_value=orbit)
    reset = server.gui.add_button("Reset view")
    if preview is not None and preview.is_file():
        from PIL import Image

        server.gui.add_image(np.asarray(Image.open(preview).convert("RGB")), label="preview.png")

    def place(client, angle: float) -> None:
        with client.atomic():
            client.camera.position = orbit_position(view, angle)
            client.camera.look_at = view.center
            client.camera.up_direction = view.up

    server.on_client_connect(lambda client: place(client, 0.0))
    reset.on_click(lambda event: place(event.client, 0.0))
    stop = threading.Event()

    def turn() -> None:
        start = time.monotonic()
        while not stop.wait(1 / 20):
            if orbiting.value:
                angle = 2 * math.pi * (time.monotonic() - start) / ORBIT_SECONDS
                for client in server.get_clients().values():
                    place(client, angle)

    threading.Thread(target=turn, daemon=True).start()
    return server, stop


def serve(path: str | Path, host: str = "127.0.0.1", port: int = 8080, up: str = "z", orbit: bool = True,
          say: Callable[[str], None] = print) -> None:
    """Serve the scene `path` (a .ply or a run folder) until Ctrl-C; print where to open it."""
    from lucidkit.exporters import resolve_input

    require_viser()  # before reading anything: the one-line hint comes first
    ply = resolve_input(path)
    view = scene_view(ply, up)
    server, stop = start_server(view, host, port, orbit, preview=ply.parent / "preview.png")
    actual = server.get_port()
    shown = "localhost" if host in ("127.0.0.1", "localhost", "0.0.0.0") else host
    say(f"Viewing {ply} ({len(view.centers)} Gaussians) at http://{shown}:{actual}  (Ctrl-C to stop)")
    say(f"From another machine: ssh -L {actual}:localhost:{actual} <user>@{socket.gethostname()}, "
        f"then open http://localhost:{actual}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.stop()
