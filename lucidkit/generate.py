"""Text → 3D Gaussians with Interval Score Matching: the engine function behind `lucidkit generate`.

prompt + preset → GenerateConfig → DiffusionPrior (+ LoRA) → ScoreDistillation (embeddings cached once)
→ initial Gaussians → the shared loop (`optimize.py`) → scene.ply, preview.png, turntable video, manifest.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from lucidkit import config as config_lib
from lucidkit.objectives import RegularizerConfig, RenderObjective
from lucidkit.scene_run import RunResult, SceneRunConfig, SceneTask, run_scene
from lucidkit.splat.init import InitConfig, init_gaussians


@dataclass
class GenerateConfig(SceneRunConfig):
    """Everything `lucidkit generate` does, as one config (presets/generate/*.yaml)."""

    init: InitConfig = field(default_factory=InitConfig)
    regularizers: RegularizerConfig = field(default_factory=RegularizerConfig)


def resolve_config(preset: str | None, overrides: dict, command: str = "generate") -> GenerateConfig:
    """Preset + overrides → GenerateConfig (without a preset: 'toy' for the toy prior, else 'default')."""
    return config_lib.resolve_preset(GenerateConfig, command, preset, overrides)


class GenerateTask(SceneTask):
    """generate's part of the shared run: Gaussians from the init shape, the guidance objective, orbit cameras."""

    command = "generate"

    def initial_splats(self, device):
        return init_gaussians(self.cfg.init, generator=torch.Generator().manual_seed(self.cfg.seed), device=device)

    def objective(self, guidance, state):
        size = self.cfg.loop.resolution or guidance.prior.resolution
        return RenderObjective(guidance, self.cfg.regularizers, state.generator, sampler=self.sampler(size))


def run(cfg: GenerateConfig, folder: Path, resume: bool = False, quiet: bool = False,
        announce=lambda message: None, prior=None, callbacks=()) -> RunResult:
    """Run (or resume) a generation into `folder` (see `scene_run.run_scene`): `prior`, a prior already loaded for
    `cfg.prior` (`lucidkit batch` keeps one per worker); `callbacks`, more loop callbacks `(state, logs)`."""
    return run_scene(GenerateTask(cfg), folder, resume=resume, quiet=quiet, announce=announce, prior=prior,
                     callbacks=callbacks)
