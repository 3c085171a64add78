"""The one run around the optimisation loop, shared by every command that optimises Gaussians (generate, edit, …).

    check the input → load the prior → config.yaml → embeddings (once) → initial Gaussians or the checkpoint
    → the loop (`optimize.py`) with progress, previews and checkpoints; Ctrl-C saves a checkpoint
    → checkpoint.pt, scene.ply, preview.png, video, manifest.json

A command supplies what differs as a `SceneTask`: its input check, its initial Gaussians, its objective, its cameras,
its previews and its final files. Everything else — the prior, the run folder, resume, the manifest — is here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lucidkit import runs
from lucidkit.cameras import CameraConfig
from lucidkit.errors import UserError
from lucidkit.guidance import GuidanceConfig, ScoreDistillation
from lucidkit.optimize import LoopConfig, TrainState, new_state, optimize, restore_state, state_payload
from lucidkit.prior.config import PriorConfig, load_prior
from lucidkit.splat.densify import DensifyConfig, make_strategy
from lucidkit.splat.optim import OptimConfig


@dataclass
class OutputConfig:
    """What is written while and after the run."""

    preview_every: int = 500
    """Write previews/step_NNNNNN.png every this many updates (0 = never)."""
    checkpoint_every: int = 500
    """Write checkpoint.pt every this many updates (0 = only at the end and on Ctrl-C)."""
    eval_views: int = 8
    """Views per eval ring in preview.png."""
    turntable_frames: int = 120
    """Frames of the turntable video (0 = no video)."""
    fps: int = 30
    """Frames per second of the turntable video."""
    video_resolution: int = 0
    """Size of preview and video frames in pixels; 0 = the render resolution."""


@dataclass
class SceneRunConfig:
    """The parts of the config that every command optimising Gaussians has; each command's config adds its own."""

    prompt: str = ""
    """The text prompt."""
    seed: int = 0
    """Seed of every random choice in the run."""
    prior: PriorConfig = field(default_factory=PriorConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


@dataclass
class RunResult:
    folder: Path
    scene: Path
    steps: int
    gaussians: int
    seconds: float


class SceneTask:
    """What one 3D command supplies to the shared run; `cfg` is a `SceneRunConfig`."""

    command = "generate"
    source_prompt: str | None = None  # ISM's inversion prompt and CFG's unconditional branch, for edits
    empty_prompt = 'the prompt is empty; say what to generate, e.g. lucidkit generate "a red cube"'

    def __init__(self, cfg):
        self.cfg = cfg

    def check_input(self) -> None:
        """Read and check the command's own input before the prior loads (nothing is written yet)."""

    def attach(self, prior) -> None:
        """Attach what the command adds to the prior (avatar: its ControlNet), before anything is written."""

    def describe(self, prior) -> str:
        """One line about the run for the start message."""
        return f"prior {self.cfg.prior.model!r} on {prior.device}"

    def initial_splats(self, device: torch.device) -> torch.nn.ParameterDict:
        raise NotImplementedError

    def start_state(self, state: TrainState, resume: bool, folder: Path) -> None:
        """Fill in (new run) or check (resumed run) what the command keeps in the state."""

    def objective(self, guidance: ScoreDistillation, state: TrainState):
        raise NotImplementedError

    def sampler(self, size: int):
        from lucidkit.cameras import OrbitSampler

        return OrbitSampler(self.cfg.camera, size, size)

    def write_preview(self, state: TrainState, path: Path, view_size: int) -> None:
        runs.write_preview(state.splats, self.cfg.camera, view_size, path, views=4)

    turntable_panel = None  # cameras -> [F, H, W, 3] images shown beside the turntable (avatar: the skeleton)

    def manifest_fields(self) -> dict:
        """The command's own fields of manifest.json."""
        return {}

    def write_outputs(self, state: TrainState, folder: Path, view_size: int) -> tuple[Path, list[str], dict]:
        """Write the final files: scene.ply, preview.png and the turntable video; return (scene.ply, the other file
        names written besides config.yaml and the checkpoint, the command's own manifest fields)."""
        from lucidkit.splat.ply import write_ply

        cfg = self.cfg
        scene = write_ply(folder / "scene.ply", state.splats)
        runs.write_preview(state.splats, cfg.camera, view_size, folder / "preview.png", views=cfg.output.eval_views)
        outputs = ["preview.png"]
        if cfg.output.turntable_frames > 0:
            outputs.append(runs.write_turntable(state.splats, cfg.camera, view_size, folder / "turntable.mp4",
                                                cfg.output.turntable_frames, cfg.output.fps,
                                                panel=self.turntable_panel).name)
        return scene, outputs, self.manifest_fields()


def save_checkpoint(state: TrainState, folder: Path) -> Path:
    return runs.write_checkpoint(folder, state_payload(state))


def load_checkpoint(folder: Path, cfg, strategy, device) -> TrainState:
    return restore_state(runs.read_checkpoint(folder), cfg.optim, strategy, device)


def run_scene(task: SceneTask, folder: Path, resume: bool = False, quiet: bool = False,
              announce=lambda message: None, prior=None, callbacks=()) -> RunResult:
    """Run (or resume) `task` into `folder`, which `runs.prepare_run_dir` has checked.

    The input is checked and the prior loads before anything is written, so bad input leaves no half-made run folder
    behind. `announce(message)` reports the start of the optimisation (the command prints it). A `prior` already
    loaded (for many runs in one process) is used instead of loading `cfg.prior`; `callbacks` are more loop
    callbacks `(state, logs)` after the progress, previews and checkpoints.
    """
    from lucidkit import export

    cfg = task.cfg
    if not cfg.prompt.strip():
        raise UserError(task.empty_prompt)
    timer = runs.Timer()
    preloaded = prior is not None  # a batch worker's: its start-up counts from this job's start
    torch.manual_seed(cfg.seed)
    task.check_input()
    cfg.guidance.check(ScoreDistillation.METHODS)  # before anything is written
    g, d = cfg.guidance, cfg.densify
    if g.refine_views and g.refine_from and d.stop_iter > g.refine_from:
        raise UserError(f"guidance.refine_views fits fixed views rendered apart from the loop's, so densification must "
                        f"have stopped by guidance.refine_from ({g.refine_from}); densify.stop_iter is {d.stop_iter}")
    prior = prior if prior is not None else load_prior(cfg.prior)
    task.attach(prior)
    load_seconds = timer.elapsed()
    if not resume:
        runs.write_config(folder, cfg)
    announce(f"Run folder: {folder} ({task.describe(prior)}, loaded in {load_seconds:.1f} s)")
    guidance = ScoreDistillation(prior, cfg.prompt, cfg.guidance, source_prompt=task.source_prompt)
    if cfg.prior.low_memory:
        prior.offload_text_encoder()
    size = cfg.loop.resolution or prior.resolution
    strategy = make_strategy(cfg.densify, size, size)
    if resume:
        state = load_checkpoint(folder, cfg, strategy, prior.device)
    else:
        state = new_state(task.initial_splats(prior.device), cfg.optim, strategy, cfg.seed)
    task.start_state(state, resume, folder)
    if resume:
        runs.check_resume_step(folder, state.step, cfg.loop.steps)
        runs.write_config(folder, cfg)  # the step total or output settings may have changed
    start_step = state.step
    objective = task.objective(guidance, state)
    sampler = task.sampler(size)
    view_size = cfg.output.video_resolution or size
    (folder / "previews").mkdir(exist_ok=True)

    earlier = list(state.extras.get("parts", []))  # the earlier sessions of a resumed run

    def checkpoint(s: TrainState) -> None:
        s.extras["parts"] = earlier + [runs.run_part(start_step, s.step, timer)]
        save_checkpoint(s, folder)

    startup = runs.StartupClock(prior.device, announce, since=timer if preloaded else None)
    loop_timer = runs.Timer()
    with runs.Progress(cfg.loop.steps, start_step, task.command, quiet=quiet) as progress, \
            runs.checkpoint_on_interrupt(lambda: checkpoint(state), lambda: state.step, cfg.loop.steps,
                                         f"lucidkit {task.command} --resume {folder}"):
        every_update = [
            startup,  # "Started updating after N s"
            progress,
            runs.every(cfg.output.preview_every, lambda s: task.write_preview(
                s, folder / "previews" / f"step_{s.step:06d}.png", view_size)),
            runs.every(cfg.output.checkpoint_every, checkpoint),
            *callbacks,
        ]
        optimize(state, sampler, objective, cfg.loop, cfg.optim, every_update)
    loop_seconds = loop_timer.elapsed()
    startup_timings = startup.timings(loop_timer, time.perf_counter(), state.step - start_step)
    checkpoint(state)

    t0 = time.perf_counter()
    scene, outputs, fields = task.write_outputs(state, folder, view_size)
    parts = earlier + [runs.run_part(start_step, state.step, timer)]
    timings = {"load_prior_s": load_seconds, "optimize_s": loop_seconds,
               "s_per_update": loop_seconds / max(state.step - start_step, 1),
               "outputs_s": time.perf_counter() - t0, **startup_timings, **runs.total_timings(parts)}
    manifest = {
        **runs.manifest_header(task.command, cfg.seed, prior),
        "prompt": cfg.prompt,
        **fields,
        "steps": state.step,
        "resumed_from_step": start_step if start_step else None,
        "gaussians": len(state.splats["means"]),
        "timings": timings,
        "outputs": [scene.name, *outputs, "config.yaml", runs.CHECKPOINT_NAME],
        "versions": export.package_versions(),
    }
    export.write_json(folder / "manifest.json", manifest)
    return RunResult(folder=folder, scene=scene, steps=state.step, gaussians=manifest["gaussians"],
                     seconds=timings["total_s"])
