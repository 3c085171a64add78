"""`lucidkit view` and the exported web formats in real browsers (headless Chromium, software WebGL): viser's page
shows the red cube in red, and a third-party WebGL splat viewer from npm (gsplat.js) draws our `.splat` at the
place and size its camera predicts. Browser tests skip where Chromium, viser, npm or the npm package is absent."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import one_line_error
from lucidkit.commands.cli import cli
from lucidkit.splat.ply import read_ply, write_ply

RED_CUBE = Path(__file__).resolve().parent.parent / "samples" / "red-cube.ply"
GSPLAT_JS = "gsplat@1.2.9"  # the npm package (huggingface/gsplat.js), installed outside the repository
NPM_PREFIX = Path(os.environ.get("LUCIDKIT_NPM_CACHE", Path.home() / ".cache" / "lucidkit-test-npm"))


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium on this machine")


def screenshot(url: str, path: Path, width: int, height: int, budget_ms: int = 15000) -> np.ndarray:
    """[H, W, 3] uint8 screenshot of `url` in headless Chromium with software WebGL (SwiftShader)."""
    from PIL import Image

    cmd = [chromium(), "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--hide-scrollbars", f"--window-size={width},{height}", f"--screenshot={path}",
           f"--virtual-time-budget={budget_ms}", url]
    subprocess.run(cmd, capture_output=True, timeout=120)
    if not path.is_file():
        pytest.skip("Chromium could not take a screenshot here")
    return np.asarray(Image.open(path).convert("RGB"))


def red_mask(image: np.ndarray) -> np.ndarray:
    rgb = image.astype(np.int32)
    return (rgb[..., 0] > 90) & (rgb[..., 0] > rgb[..., 1] + 50) & (rgb[..., 0] > rgb[..., 2] + 50)


# ----------------------------------------------------------------------------------------------------------------
# lucidkit view (viser)
# ----------------------------------------------------------------------------------------------------------------


def test_scene_view_frames_the_scene():
    from lucidkit.viewer import orbit_position, scene_view

    view = scene_view(RED_CUBE, up="z")
    assert view.centers.shape == (2400, 3) and view.covariances.shape == (2400, 3, 3)
    assert (view.rgbs[:, 0] > 2 * view.rgbs[:, 1]).all()  # red
    np.testing.assert_allclose(view.center, 0, atol=0.02)
    np.testing.assert_allclose(view.up, [0, 0, 1])
    camera = orbit_position(view, 0.0)
    assert np.linalg.norm(camera - view.center) > 3 * np.abs(view.centers).max()  # the cube fits the view
    assert camera[2] > 0  # a little above the horizon, looking down
    assert np.allclose(scene_view(RED_CUBE, up="-y").up, [0, -1, 0])


def test_view_without_viser_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "viser", None)  # import viser -> ImportError
    one_line_error(CliRunner().invoke(cli, ["view", str(RED_CUBE)]), 'pip install "lucidkit[view]"')


def test_view_of_a_bad_file_gives_one_line(tmp_path):
    pytest.importorskip("viser")
    bad = tmp_path / "scene.ply"
    bad.write_text("not a ply")
    one_line_error(CliRunner().invoke(cli, ["view", str(bad)]), "not a PLY")
    one_line_error(CliRunner().invoke(cli, ["view", str(tmp_path / "nothing.ply")]), "no such file")


def test_view_command_prints_the_address_serves_the_page_and_stops_on_ctrl_c():
    pytest.importorskip("viser")
    import signal
    import urllib.request

    from lucidkit.viewer import free_port

    port = free_port("127.0.0.1", 8300)
    proc = subprocess.Popen([sys.executable, "-m", "lucidkit.commands.cli", "view", str(RED_CUBE), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("From another machine"):
                break
        text = "".join(lines)
        assert f"Viewing {RED_CUBE} (2400 Gaussians) at http://localhost:{port}" in text, text
        assert f"ssh -L {port}:localhost:{port}" in text
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=10).read().decode()
        assert "<html" in page.lower()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_viser_page_shows_the_red_cube(tmp_path):
    pytest.importorskip("viser")
    chromium()
    from lucidkit.viewer import free_port, scene_view, start_server

    server, stop = start_server(scene_view(RED_CUBE), port=free_port("127.0.0.1", 8200), orbit=False)
    try:
        image = screenshot(f"http://127.0.0.1:{server.get_port()}", tmp_path / "viser.png", 1000, 700, budget_ms=8000)
    finally:
        stop.set()
        server.stop()
    red = red_mask(image)
    assert red.mean() > 0.01, "no red object on the page"
    rows, cols = np.nonzero(red)
    # The orbit's first camera looks at the cube's centre: the red blob sits in the middle of the page.
    assert abs(rows.mean() / image.shape[0] - 0.5) < 0.15 and abs(cols.mean() / image.shape[1] - 0.5) < 0.15
    colour = image[red].mean(axis=0)
    assert colour[0] > 150 and colour[1] < 130 and colour[2] < 130, colour


# ----------------------------------------------------------------------------------------------------------------
# Our .splat in a third-party WebGL viewer (gsplat.js from npm)
# ----------------------------------------------------------------------------------------------------------------

PAGE = """<!doctype html><html><body style="margin:0;background:#000">
<canvas id="c" style="width:{size}px;height:{size}px;display:block"></canvas>
<script type="module">
import * as SPLAT from "./gsplat/dist/index.es.js";
const renderer = new SPLAT.WebGLRenderer(document.getElementById("c"));
renderer.setSize({size}, {size});
const scene = new SPLAT.Scene();
const camera = new SPLAT.Camera();
camera.data.fx = {focal}; camera.data.fy = {focal};
camera.position = new SPLAT.Vector3(0, 0, -{distance});
await SPLAT.Loader.LoadAsync("./cube.splat", scene, () => {{}});
setInterval(() => renderer.render(scene, camera), 200);  // headless Chromium runs no animation frames
</script></body></html>"""


def gsplat_js() -> Path:
    """The installed npm package's folder; installs it from npm into a cache outside the repository if needed."""
    package = NPM_PREFIX / "node_modules" / "gsplat"
    if not (package / "dist" / "index.es.js").is_file():
        if not shutil.which("npm"):
            pytest.skip("npm is not installed")
        NPM_PREFIX.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(["npm", "install", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund",
                            "--fetch-retries=0", "--fetch-timeout=20000", GSPLAT_JS],
                           capture_output=True, timeout=180)
        except subprocess.TimeoutExpired:
            pass
        if not (package / "dist" / "index.es.js").is_file():
            pytest.skip(f"the npm package {GSPLAT_JS} is not available (offline?)")
    return package


def test_splat_file_shows_a_red_cube_at_the_right_place_in_a_web_viewer(tmp_path):
    chromium()
    package = gsplat_js()
    # The red cube, moved 0.3 along +x (right) and 0.4 up (+z, our scenes' up axis).
    splats = {k: v.detach().clone() for k, v in read_ply(RED_CUBE).splats.items()}
    shift = torch.tensor([0.3, 0.0, 0.4])
    splats["means"] += shift
    write_ply(tmp_path / "cube.ply", splats, with_normals=False)
    site = tmp_path / "site"
    site.mkdir()
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "cube.ply"), "--format", "splat",
                                      "--out", str(site / "cube.splat")])
    assert result.exit_code == 0, result.output
    os.symlink(package, site / "gsplat")
    size, focal, distance = 512, 600.0, 3.0
    (site / "index.html").write_text(PAGE.format(size=size, focal=focal, distance=distance))

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        for budget_ms in (12000, 30000, 60000):  # a loaded machine may need longer to load and draw the page
            image = screenshot(f"http://127.0.0.1:{httpd.server_address[1]}/index.html", tmp_path / "shot.png",
                               size, size, budget_ms=budget_ms)
            if red_mask(image).sum() > 500:
                break
    finally:
        httpd.shutdown()
    red = red_mask(image)
    assert red.sum() > 500, "the viewer shows no red cube"

    # Where the viewer's camera (at z = -distance, looking along +z; x right, y down) must put the cube: the
    # bounding box of its 8 corners, in the -y-up web frame (x, y, z) -> (x, -z, y) the export writes.
    half = float(np.abs(read_ply(RED_CUBE).splats["means"].detach().numpy()).max())
    corners = np.array([[sx, sy, sz] for sx in (-half, half) for sy in (-half, half) for sz in (-half, half)])
    world = corners + shift.numpy()
    web = np.stack([world[:, 0], -world[:, 2], world[:, 1]], axis=1)
    u = size / 2 + focal * web[:, 0] / (web[:, 2] + distance)
    v = size / 2 + focal * web[:, 1] / (web[:, 2] + distance)
    rows, cols = np.nonzero(red)
    found = np.array([cols.min(), rows.min(), cols.max(), rows.max()])
    wanted = np.array([u.min(), v.min(), u.max(), v.max()])
    sigma_px = focal * float(read_ply(RED_CUBE).splats["scales"].detach().max().exp()) / distance  # ~4 px
    assert np.abs(found - wanted).max() < 2 * sigma_px + 2, (found, wanted)  # measured: within 6 px
    colour = image[red].mean(axis=0)
    assert colour[0] > 120 and colour[1] < 60 and colour[2] < 60, colour  # red, as in the file
