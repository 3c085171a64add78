"""What the issue-19 probes (fixedpoint, reconstruct, refine) share: their run options, Gaussians as trainable
parameters, the silhouette line printed every few updates, and one `generate` run in a folder."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch


def add_run_options(parser: argparse.ArgumentParser, threads: int = 1) -> None:
    """--seed, --set KEY=VALUE (repeatable), --threads (default `threads`), --out."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--threads", type=int, default=threads)
    parser.add_argument("--out", type=Path, help="keep the run folder here (for `probe.py compare`)")


def as_parameters(splats: dict, device) -> torch.nn.ParameterDict:
    """Raw Gaussian tensors (engine layout) as the trainable parameters a run starts from."""
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(device)) for k, v in splats.items()})


def silhouette_printer(cams, truth_alpha: torch.Tensor, every: int, last: int):
    """A loop callback `(state, logs=None)` that prints size ratio, silhouette IoU, halo share and the number of
    Gaussians at `cams` every `every` updates and at update `last`."""
    from lucidkit.bench.quality import halo_share, silhouette_iou, size_ratio
    from lucidkit.runs import render_views

    def measure(state, logs=None) -> None:
        if state.step % every and state.step != last:
            return
        _, alpha, _ = render_views(state.splats, cams)
        a = alpha[..., 0]
        print(f"step {state.step:4d}  size {size_ratio(a, truth_alpha):.2f}  IoU {silhouette_iou(a, truth_alpha):.2f}  "
              f"halo {halo_share(a):.3f}  gaussians {len(state.splats['means'])}", flush=True)

    return measure


def run_task(task, out: Path | None, callbacks=()) -> dict:
    """Run a `generate` task into `out` (or a scratch folder) quietly; returns the scene's raw Gaussians."""
    from lucidkit.scene_run import run_scene
    from lucidkit.splat.ply import read_ply

    with tempfile.TemporaryDirectory() as scratch:
        folder = out or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        run_scene(task, folder, quiet=True, callbacks=list(callbacks))
        return read_ply(folder / "scene.ply").splats
