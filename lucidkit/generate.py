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
from lucidkit.guidance import GuidanceConfig, ScoreDistillation
from lucidkit.optimize import LoopConfig
from lucidkit.prior.config import PriorConfig
from lucidkit.regularizers import image_regularizers
from lucidkit.scene_run import OutputConfig, RunResult, SceneTask, run_scene
from lucidkit.splat.densify import DensifyConfig
from lucidkit.splat.init import InitConfig, init_gaussians
from lucidkit.splat.optim import OptimConfig
from lucidkit.splat.ply import write_ply


@dataclass
class RegularizerConfig:
    """Extra losses of the recipe, added to the guidance loss."""

    tv_rgb: float = 1.0
    """Weight of the total variation of the rendered RGB."""
    tv_disparity: float = 1.0
    """Weight of the total variation of the normalised disparity."""
    scale: float = 1.0
    """Weight of the mean activated Gaussian scale."""


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


class GenerateObjective:
    """Guidance on RGB (or, for a fraction of updates, on the normalised disparity) plus the recipe's regularisers."""

    def __init__(self, guidance: ScoreDistillation, reg: RegularizerConfig, generator: torch.Generator):
        self.guidance, self.reg, self.generator = guidance, reg, generator
        # with a compiled prior, the image-space regularisers are compiled too (a few fused kernels instead of ~40
        # small launches right after the render, where the GPU waits for the CPU)
        self.image_terms = (torch.compile(image_regularizers, dynamic=False) if guidance.prior.compiled
                            else image_regularizers)

    def __call__(self, out, cams, step, splats):
        on_disparity = float(torch.rand(1, generator=self.generator)) < self.guidance.cfg.disparity_ratio
        if on_disparity:
            disparity, loss_reg = self.regularizers(out)
            image = disparity.expand(-1, -1, -1, 3)  # [B, H, W, 3]
        else:
            image = out.rgb
        loss, logs = self.guidance.loss(image.permute(0, 3, 1, 2), cams.azimuth_deg, step, self.generator)
        if not on_disparity:
            # after the guidance: the GPU then has the encoder and UNet work queued while the host prepares these
            # (right after the render's sync it would wait for them, ~3 ms on an H100)
            _, loss_reg = self.regularizers(out)
        loss = loss + loss_reg
        if self.reg.scale:
            loss = loss + self.reg.scale * torch.exp(splats["scales"]).mean()
        return loss, logs

    def regularizers(self, out) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised disparity [B, H, W, 1], the weighted TV terms) of a render."""
        r = self.reg
        return self.image_terms(out.rgb, out.depth, out.alpha, r.tv_rgb, r.tv_disparity)


class GenerateTask(SceneTask):
    """generate's part of the shared run: Gaussians from the init shape, the guidance objective, orbit cameras."""

    command = "generate"

    def initial_splats(self, device):
        return init_gaussians(self.cfg.init, generator=torch.Generator().manual_seed(self.cfg.seed), device=device)

    def objective(self, guidance, state):
        return GenerateObjective(guidance, self.cfg.regularizers, state.generator)

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
        announce=lambda message: None, prior=None) -> RunResult:
    """Run (or resume) a generation into `folder` (see `scene_run.run_scene`)."""
    return run_scene(GenerateTask(cfg), folder, resume=resume, quiet=quiet, announce=announce, prior=prior)
