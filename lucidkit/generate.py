"""Text → 3D Gaussians with Interval Score Matching: the engine function behind `lucidkit generate`.

prompt + preset → GenerateConfig → DiffusionPrior (+ LoRA) → ScoreDistillation (embeddings cached once)
→ initial Gaussians → the shared loop (`optimize.py`) → scene.ply, preview.png, turntable video, manifest.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lucidkit import config as config_lib
from lucidkit.cameras import CameraConfig, OrbitSampler
from lucidkit.errors import UserError
from lucidkit.guidance import GuidanceConfig, ScoreDistillation
from lucidkit.optimize import (LoopConfig, TrainState, image_regularizers, load_checkpoint, new_state, optimize,
                               save_checkpoint)
from lucidkit.splat.densify import DensifyConfig, make_strategy
from lucidkit.splat.init import InitConfig, init_gaussians
from lucidkit.splat.scene import OptimConfig


@dataclass
class PriorConfig:
    """Which diffusion prior guides the optimisation, and how it runs."""

    model: str = "toy"
    """'toy' (shipped), 'sd21-base', 'sd15', a diffusers folder, a .safetensors file or a hub id."""
    config: str | None = None
    """Single .safetensors files only: a diffusers folder whose configs describe the checkpoint (default: the
    shipped SD 1.x / 2.x architectures)."""
    tokenizer: str | None = None
    """Single .safetensors files only: a folder holding the CLIP tokenizer (a diffusers folder or its tokenizer/)."""
    lora: str | None = None
    """A LoRA folder or .safetensors file (diffusers format) to attach to the prior."""
    lora_scale: float = 1.0
    """Strength of the LoRA."""
    precision: str = "auto"
    """'auto' (bf16 on CUDA, fp32 on CPU), 'fp32', 'bf16' or 'fp16'."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda[:N]'."""
    fast_path: bool = True
    """Channels-last layouts and cuDNN autotuning on CUDA (same results up to rounding)."""
    compile: bool = False
    """CUDA only: torch.compile the UNet (CUDA graphs) and VAE encoder; minutes of start-up, faster updates."""
    low_memory: bool = False
    """Fit small GPUs: VAE gradient checkpointing, CFG branches one at a time, text encoder moved to the CPU."""


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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"prior.device is {name!r} but CUDA is not available on this machine; use 'cpu' or 'auto'")
    return torch.device(name)


def load_prior(cfg: PriorConfig):
    from lucidkit.prior import DiffusionPrior

    device = pick_device(cfg.device)
    prior = DiffusionPrior.load(cfg.model, device=device, dtype=cfg.precision, config=cfg.config,
                                tokenizer=cfg.tokenizer)
    if cfg.lora:
        prior.load_lora(cfg.lora, scale=cfg.lora_scale)
    if cfg.fast_path:
        prior.enable_fast_path(compile=cfg.compile)
    if cfg.low_memory:
        prior.enable_low_memory()
    return prior


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
            # (right after the render's sync it would wait for them, ~3 ms; bench/results/levers.md, round 16)
            _, loss_reg = self.regularizers(out)
        loss = loss + loss_reg
        if self.reg.scale:
            loss = loss + self.reg.scale * torch.exp(splats["scales"]).mean()
        return loss, logs

    def regularizers(self, out) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised disparity [B, H, W, 1], the weighted TV terms) of a render."""
        r = self.reg
        return self.image_terms(out.rgb, out.depth, out.alpha, r.tv_rgb, r.tv_disparity)


@dataclass
class RunResult:
    folder: Path
    scene: Path
    steps: int
    gaussians: int
    seconds: float


def run(cfg: GenerateConfig, folder: Path, resume: bool = False, quiet: bool = False,
        announce=lambda message: None, prior=None, callbacks=()) -> RunResult:
    """Run (or resume) a generation into `folder`, which `runs.prepare_run_dir` has checked.

    The prior loads before anything is written, so a bad model leaves no half-made run folder behind.
    `announce(message)` reports the start of the optimisation (the command prints it).
    `prior`: a prior already loaded for `cfg.prior` (`lucidkit batch` keeps one per worker); `callbacks`: more
    loop callbacks `(state, logs)` after the progress bar, previews and checkpoints.
    """
    from lucidkit import export, runs

    if not cfg.prompt.strip():
        raise UserError("the prompt is empty; say what to generate, e.g. lucidkit generate \"a red cube\"")
    timer = runs.Timer()
    torch.manual_seed(cfg.seed)
    prior = prior if prior is not None else load_prior(cfg.prior)
    load_seconds = timer.elapsed()
    if not resume:
        export.write_yaml(folder / "config.yaml", config_lib.to_dict(cfg))
    announce(f"Run folder: {folder} (prior {cfg.prior.model!r} on {prior.device}, loaded in {load_seconds:.1f} s)")
    guidance = ScoreDistillation(prior, cfg.prompt, cfg.guidance)  # every embedding the run needs, once
    if cfg.prior.low_memory:
        prior.offload_text_encoder()
    size = cfg.loop.resolution or prior.resolution
    strategy = make_strategy(cfg.densify, size, size)
    if resume:
        state = load_checkpoint(folder, cfg.optim, strategy, prior.device)
    else:
        init_gen = torch.Generator().manual_seed(cfg.seed)
        state = new_state(init_gaussians(cfg.init, generator=init_gen, device=prior.device), cfg.optim, strategy,
                          cfg.seed)
    start_step = state.step
    objective = GenerateObjective(guidance, cfg.regularizers, state.generator)
    sampler = OrbitSampler(cfg.camera, size, size)
    view_size = cfg.output.video_resolution or size
    (folder / "previews").mkdir(exist_ok=True)

    progress = runs.Progress(cfg.loop.steps, start_step, "generate", quiet=quiet)
    callbacks = [
        progress,
        runs.every(cfg.output.preview_every, lambda s: runs.write_preview(
            s.splats, cfg.camera, view_size, folder / "previews" / f"step_{s.step:06d}.png", views=4)),
        runs.every(cfg.output.checkpoint_every, lambda s: save_checkpoint(s, folder)),
        *callbacks,
    ]
    loop_timer = runs.Timer()
    try:
        optimize(state, sampler, objective, cfg.loop, cfg.optim, callbacks)
    except KeyboardInterrupt:
        progress.close()
        save_checkpoint(state, folder)
        raise UserError(f"interrupted at step {state.step}/{cfg.loop.steps}; checkpoint saved. "
                        f"Continue with: lucidkit generate --resume {folder}") from None
    progress.close()
    loop_seconds = loop_timer.elapsed()
    save_checkpoint(state, folder)
    return finish(cfg, state, folder, prior, start_step, timings={
        "load_prior_s": load_seconds, "optimize_s": loop_seconds,
        "s_per_update": loop_seconds / max(state.step - start_step, 1)}, timer=timer, view_size=view_size)


def finish(cfg, state: TrainState, folder: Path, prior, start_step: int, timings: dict, timer, view_size: int):
    """Write the final outputs: scene.ply, preview.png, turntable video, manifest.json."""
    from lucidkit import export, runs
    from lucidkit.splat.scene import write_ply

    t0 = time.perf_counter()
    scene = write_ply(folder / "scene.ply", state.splats)
    runs.write_preview(state.splats, cfg.camera, view_size, folder / "preview.png", views=cfg.output.eval_views)
    outputs = ["scene.ply", "preview.png", "config.yaml", "checkpoint.pt"]
    if cfg.output.turntable_frames > 0:
        video = runs.write_turntable(state.splats, cfg.camera, view_size, folder / "turntable.mp4",
                                     cfg.output.turntable_frames, cfg.output.fps)
        outputs.append(video.name)
    timings = {**timings, "outputs_s": time.perf_counter() - t0, "total_s": timer.elapsed()}
    manifest = {
        "command": "generate",
        "prompt": cfg.prompt,
        "seed": cfg.seed,
        "model": prior.source,
        "device": str(prior.device),
        "dtype": str(prior.dtype).replace("torch.", ""),
        "steps": state.step,
        "resumed_from_step": start_step if start_step else None,
        "gaussians": len(state.splats["means"]),
        "timings": timings,
        "outputs": outputs,
        "versions": export.package_versions(),
    }
    export.write_json(folder / "manifest.json", manifest)
    return RunResult(folder=folder, scene=scene, steps=state.step, gaussians=manifest["gaussians"],
                     seconds=timings["total_s"])
