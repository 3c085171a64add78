"""Text → 3D Gaussians with Interval Score Matching: the engine function behind `lucidkit generate`.

prompt + preset → GenerateConfig → DiffusionPrior (+ LoRA) → ScoreDistillation (embeddings cached once)
→ initial Gaussians → the shared loop (`optimize.py`) → scene.ply, preview.png, turntable video, manifest.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from lucidkit import config as config_lib
from lucidkit import runs
from lucidkit.cameras import CameraConfig
from lucidkit.guidance import GuidanceConfig
from lucidkit.objectives import RegularizerConfig, RenderObjective
from lucidkit.optimize import LoopConfig
from lucidkit.prior.config import PriorConfig
from lucidkit.scene_run import OutputConfig, RunResult, SceneTask, run_scene
from lucidkit.splat.densify import DensifyConfig
from lucidkit.splat.init import InitConfig, init_gaussians
from lucidkit.splat.optim import OptimConfig
from lucidkit.splat.ply import write_ply


@dataclass
class GenerateConfig:
    """Everything `lucidkit generate` does, as one config (presets/generate/*.yaml)."""

    prompt: str = ""
    """The text prompt."""
    seed: int = 0
    """Seed of every random choice in the run."""
    prior: PriorConfig = field(default_factory=PriorConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    init: InitConfig = field(default_factory=InitConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    regularizers: RegularizerConfig = field(default_factory=RegularizerConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


def resolve_config(preset: str | None, overrides: dict, command: str = "generate") -> GenerateConfig:
    """Preset + overrides → GenerateConfig (without a preset: 'toy' for the toy prior, else 'default')."""
    return config_lib.resolve_preset(GenerateConfig, command, preset, overrides)


class GenerateTask(SceneTask):
    """generate's part of the shared run: Gaussians from the init shape, the guidance objective, orbit cameras."""

    command = "generate"

    def initial_splats(self, device):
        return init_gaussians(self.cfg.init, generator=torch.Generator().manual_seed(self.cfg.seed), device=device)

    def objective(self, guidance, state):
        return RenderObjective(guidance, self.cfg.regularizers, state.generator)

    def write_outputs(self, state, folder, view_size):
        cfg = self.cfg
        scene = write_ply(folder / "scene.ply", state.splats)
        runs.write_preview(state.splats, cfg.camera, view_size, folder / "preview.png", views=cfg.output.eval_views)
        outputs = ["preview.png"]
        if cfg.output.turntable_frames > 0:
            video = runs.write_turntable(state.splats, cfg.camera, view_size, folder / "turntable.mp4",
                                         cfg.output.turntable_frames, cfg.output.fps)
            outputs.append(video.name)
        return scene, outputs, {}


def run(cfg: GenerateConfig, folder: Path, resume: bool = False, quiet: bool = False,
        announce=lambda message: None, prior=None, callbacks=()) -> RunResult:
    """Run (or resume) a generation into `folder` (see `scene_run.run_scene`): `prior`, a prior already loaded for
    `cfg.prior` (`lucidkit batch` keeps one per worker); `callbacks`, more loop callbacks `(state, logs)`."""
    return run_scene(GenerateTask(cfg), folder, resume=resume, quiet=quiet, announce=announce, prior=prior,
                     callbacks=callbacks)
