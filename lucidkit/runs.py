"""Run folders, checkpoints and the loop's callbacks (progress, previews), shared by every command that runs a loop.

A run folder holds `config.yaml` (the resolved config, written first), `checkpoint.pt` (every N updates and on
Ctrl-C), `previews/`, and at the end `scene.ply`, `preview.png`, `turntable.mp4` and `manifest.json`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from lucidkit import config as config_lib
from lucidkit.errors import UserError
from lucidkit.export import check_writable_dir

CHECKPOINT_NAME = "checkpoint.pt"
RUN_MARKERS = (CHECKPOINT_NAME, "scene.ply", "manifest.json")


def slugify(text: str, max_len: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug[:max_len].rstrip("-") or "run")


def prepare_run_dir(out: str | None, name: str, resume: bool, root: str = "outputs", overwrite: bool = False) -> Path:
    """The run folder: `--out` or `outputs/<slug>-<time>/`. A new run never overwrites an existing run, and goes
    into a folder that holds other files only with `overwrite`."""
    if out is None:
        out = str(Path(root) / f"{slugify(name)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    folder = Path(out)
    if resume:
        if not (folder / "config.yaml").exists():
            raise UserError(f"cannot resume: {folder} is not a lucidkit run folder (no config.yaml)")
        return check_writable_dir(folder)
    existing = [m for m in RUN_MARKERS if (folder / m).exists()]
    if existing:
        raise UserError(f"output folder {folder} already holds a run ({existing[0]}); "
                        f"pass --resume {folder} to continue it, or choose another --out")
    if folder.is_dir() and not overwrite:
        others = sorted(p.name for p in folder.iterdir())
        if others:
            raise UserError(f"output folder {folder} is not empty and is not a lucidkit run ({len(others)} entries, "
                            f"e.g. {others[0]}); choose another --out, or pass --overwrite to write into it anyway")
    return check_writable_dir(folder)


# The fields a resumed run may change: the step total (to continue a run further) and what it writes.
STEP_FIELDS = ("loop.steps", "train.steps")
RESUMABLE = (*STEP_FIELDS, "output.", "prior.device")


def total_steps(cfg) -> int:
    """The step total of a run's config (`loop.steps` of the 3D commands, `train.steps` of train-lora)."""
    return cfg.loop.steps if hasattr(cfg, "loop") else cfg.train.steps


def finished(folder: Path, cfg) -> bool:
    """Whether the run in `folder` wrote its final files at its step total."""
    try:
        steps = json.loads((folder / "manifest.json").read_text())["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return int(steps) >= total_steps(cfg)


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def resume_run(folder: str, config_cls, overrides: dict | None = None):
    """`--resume FOLDER [overrides]`: (the checked run folder, its config with the overrides applied, the fields
    they changed). Only the step total, output settings and the device may change; asking to change anything else
    is refused with one line naming the fields. The run writes a changed config back (`write_config`) once its
    checkpoint has been read and checked."""
    path = prepare_run_dir(folder, "", resume=True)
    saved = config_lib.from_dict(config_cls, config_lib.load_yaml(path / "config.yaml"))
    cfg = config_lib.merge(saved, overrides or {})
    before, after = _flat(config_lib.to_dict(saved)), _flat(config_lib.to_dict(cfg))
    changed = {k: after[k] for k in after if after[k] != before.get(k)}
    fixed = [k for k in changed if not k.startswith(RESUMABLE)]
    if fixed:
        raise UserError(f"--resume {path} cannot change {', '.join(fixed)} (a resumed run keeps its settings; only "
                        "the step total, output.* and prior.device may change); start a new run with --out instead")
    if any(k in STEP_FIELDS for k in changed) and (path / CHECKPOINT_NAME).exists():
        check_resume_step(path, int(read_checkpoint(path, mmap=True)["step"]), total_steps(cfg))
    return path, cfg, changed


def write_config(folder: Path, cfg) -> None:
    """`folder/config.yaml`: the resolved config (written when a run starts, and when a resume changed it)."""
    from lucidkit.export import write_yaml

    path = Path(folder) / "config.yaml"
    data = config_lib.to_dict(cfg)
    if not path.exists() or config_lib.load_yaml(path) != data:
        write_yaml(path, data)


def check_resume_step(folder: Path, step: int, total: int) -> None:
    """A resumed run must not ask for a step total below the step its checkpoint has reached."""
    if step > total:
        raise UserError(f"cannot resume: {folder} is at step {step}, past the step total {total} asked for; "
                        f"ask for at least --steps {step}")


@dataclass
class Timer:
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def process_age_s() -> float:
    """Seconds since this process started, as a user waiting for it counts them (the interpreter's start and every
    import included): from the kernel's start time of the process on Linux; elsewhere since lucidkit was first
    imported (the command line imports it first)."""
    try:
        with open("/proc/self/stat") as f:  # field 22, starttime, in clock ticks after boot; comm may hold spaces
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:  # seconds after boot, 10 ms resolution
            return max(float(f.read().split()[0]) - started, 0.0)
    except (OSError, ValueError, IndexError):
        import lucidkit

        return time.time() - lucidkit.IMPORTED_AT


class StartupClock:
    """A loop callback that notes when the first update of this session finished (the GPU synchronised once):
    `startup_s` counts from the process start — what a user waits before updates begin (loading, compilation,
    CUDA-graph capture) — or, for a prior loaded earlier in the process (a batch worker), from `since`'s start.
    It announces "Started updating after N s" once."""

    def __init__(self, device, announce=lambda message: None, since: Timer | None = None):
        self.device, self.announce, self.since = device, announce, since
        self.startup_s = self.first_done = None

    def __call__(self, state, logs: dict) -> None:
        if self.first_done is not None:
            return
        if getattr(self.device, "type", None) == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
        self.first_done = time.perf_counter()
        self.startup_s = self.since.elapsed() if self.since is not None else process_age_s()
        origin = "the job's start" if self.since is not None else "process start"
        self.announce(f"Started updating after {self.startup_s:.1f} s ({origin} to the first update finished)")

    def timings(self, loop: Timer, loop_end: float, updates: int) -> dict:
        """The manifest's start-up fields: `startup_s`, `first_update_s` (the first update, with its compilation and
        capture) and `s_per_update_after_first` (the steady rate: every later update)."""
        if self.first_done is None:
            return {}
        later = updates - 1
        return {"startup_s": round(self.startup_s, 3), "first_update_s": round(self.first_done - loop.start, 3),
                "s_per_update_after_first": (loop_end - self.first_done) / later if later > 0 else None}


class Progress:
    """A rich progress bar (loss, Gaussians, it/s, elapsed, ETA) on a terminal; one whole log line every `log_every`
    updates with --quiet or when stderr is a log file (where a bar would be cut to 80 columns)."""

    def __init__(self, total: int, start: int, description: str, quiet: bool = False, log_every: int = 100):
        self.total, self.log_every = total, log_every
        self.quiet = quiet or not sys.stderr.isatty()
        self.t0, self.start = time.perf_counter(), start
        self.last_refresh = 0.0
        self.bar = None
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False,
            )
            self.task = self.bar.add_task(description, total=total, completed=start, stats="", rate="")
            self.bar.start()

    def __call__(self, state, logs: dict) -> None:
        now = time.perf_counter()
        last = state.step == self.total
        if self.bar is not None:
            if not last and now - self.last_refresh < 0.5:  # reading the loss syncs the GPU: at most twice a second
                return
        elif not (last or state.step % self.log_every == 0):
            return
        self.last_refresh = now
        rate = (state.step - self.start) / max(now - self.t0, 1e-9)
        stats = f"loss {float(logs['loss']):.4g}" + (f"  gaussians {logs['gaussians']}" if "gaussians" in logs else "")
        if self.bar is not None:
            self.bar.update(self.task, completed=state.step, stats=stats, rate=f"{rate:.2f} it/s")
        else:
            elapsed = now - self.t0
            eta = (self.total - state.step) / rate if rate > 0 else 0.0
            print(f"step {state.step}/{self.total}  {stats}  {rate:.2f} it/s  elapsed {_clock(elapsed)}  "
                  f"ETA {_clock(eta)}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_checkpoint(folder: Path, payload: dict) -> Path:
    """Write `folder/checkpoint.pt` atomically (temp file + rename): an interruption never leaves a half file. The
    payload holds tensors, numbers, strings and dicts of them only, so `read_checkpoint` can load it safely."""
    import torch

    from lucidkit.export import atomic_path

    path = Path(folder) / CHECKPOINT_NAME
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(folder: Path, mmap: bool = False) -> dict:
    """The payload of `folder/checkpoint.pt` (safe load: tensors and numbers only) or one clear UserError.
    `mmap` maps the tensors instead of reading them (cheap when only a number of the payload is needed)."""
    import torch

    path = Path(folder) / CHECKPOINT_NAME
    if not path.exists():
        raise UserError(f"cannot resume: {path} does not exist (the run folder has no checkpoint yet)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is the user's file problem
        raise UserError(f"cannot resume: {path} is not a readable lucidkit checkpoint ({e})") from None


@contextmanager
def checkpoint_on_interrupt(save, step, total: int, resume_command: str):
    """Ctrl-C inside the block: `save()` a checkpoint and stop with one line saying how to continue."""
    try:
        yield
    except KeyboardInterrupt:
        save()
        raise UserError(f"interrupted at step {step()}/{total}; checkpoint saved. Continue with: {resume_command}") \
            from None


def run_part(from_step: int, to_step: int, timer: "Timer") -> dict:
    """One session of a run (a run resumed twice has three): its steps and its wall time so far."""
    return {"from_step": from_step, "to_step": to_step, "seconds": round(timer.elapsed(), 3)}


def total_timings(parts: list[dict]) -> dict:
    """The manifest's totals over every session of a run: `total_s` (wall time of all sessions) and the parts."""
    return {"total_s": sum(p["seconds"] for p in parts), "parts": parts}


def manifest_header(command: str, seed: int, prior) -> dict:
    """The fields every run's manifest.json starts with."""
    import torch

    graphs = prior.graph_counts()
    model = {**prior.source, "graphs": graphs} if graphs else prior.source
    return {"command": command, "seed": seed, "model": model, "device": str(prior.device),
            "dtype": str(prior.dtype).replace("torch.", ""), "cpu_threads": torch.get_num_threads()}


def _clock(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}"


def every(n: int, fn):
    """A callback that calls `fn(state)` every `n` updates (never when n <= 0)."""

    def callback(state, logs):
        if n > 0 and state.step % n == 0:
            fn(state)

    return callback


def render_views(splats, cams, background=(1.0, 1.0, 1.0), chunk: int = 8):
    """Render `cams` on a solid background without gradients, in chunks; returns (rgb, alpha, depth) on CPU."""
    import torch

    from lucidkit.splat.render import render_state

    rgb, alpha, depth = [], [], []
    with torch.no_grad():
        for i in range(0, len(cams), chunk):
            sub = cams[i : i + chunk]
            bg = torch.tensor(background, dtype=torch.float32).expand(len(sub), 3)
            out = render_state(splats, sub, bg)
            rgb.append(out.rgb.cpu()), alpha.append(out.alpha.cpu()), depth.append(out.depth.cpu())
    return torch.cat(rgb), torch.cat(alpha), torch.cat(depth)


def write_preview(splats, camera_cfg, size: int, path: Path, views: int = 8) -> Path:
    """A grid of eval views: one RGB row and one depth row per eval ring (polar angles of the camera config)."""
    import numpy as np

    from lucidkit.cameras import eval_ring
    from lucidkit.export import preview_grid, write_png

    rows = []
    for polar in camera_cfg.eval_polar_deg:
        rgb, alpha, depth = render_views(splats, eval_ring(views, camera_cfg, size, size, polar_deg=polar))
        rows.append(preview_grid(rgb.numpy(), depth.numpy(), alpha.numpy(), max_cols=views))
    return write_png(path, np.concatenate(rows, axis=0))


def write_turntable(splats, camera_cfg, size: int, path: Path, frames: int, fps: int, panel=None) -> Path:
    """A full orbit video at the eval radius (mp4, or gif where no encoder works); returns the written path.
    `panel(cameras) -> [F, H, W, 3]` in [0, 1] adds images shown beside the scene (avatar: its skeleton)."""
    import numpy as np

    from lucidkit.cameras import turntable
    from lucidkit.export import to_uint8, write_video

    cams = turntable(frames, camera_cfg, size, size)
    video = to_uint8(render_views(splats, cams)[0].numpy())  # [F, H, W, 3]
    if panel is not None:
        video = np.concatenate([video, to_uint8(panel(cams).numpy())], axis=2)
    return write_video(path, video, fps=fps)


def remove_if_empty(folder: Path) -> None:
    """Remove a run folder that holds nothing (a run that failed before writing anything)."""
    try:
        folder.rmdir()
    except OSError:
        pass


@contextmanager
def new_run(out: str | None, name: str, overwrite: bool = False):
    """The folder of a new run (`prepare_run_dir`); a run that fails before writing anything leaves no empty
    folder behind."""
    folder = prepare_run_dir(out, name, resume=False, overwrite=overwrite)
    try:
        yield folder
    except BaseException:
        remove_if_empty(folder)
        raise
