"""DreamBooth-style LoRA personalisation of the prior: the engine behind `lucidkit train-lora`.

A handful of photos of one subject and a rare token ("sks") → a LoRA (peft, attached through diffusers) on the
prior's UNet, and optionally on its text encoder, such that "a sks dog" draws *that* dog. The result is one
`pytorch_lora_weights.safetensors` in diffusers' format, which `StableDiffusionPipeline.load_lora_weights`,
`lucidkit generate --lora` and other diffusers-based tools read.

    photos/ → SubjectImages (EXIF orientation, centre-crop or pad, checks) → instance prompts
    → LoRA matrices on the frozen prior → training loop → pytorch_lora_weights.safetensors, config.yaml, manifest.json

Symbols (as in docs/ism.md): z0 = VAE latents of a photo; ε ~ N(0, I); t ~ U{0, …, T−1};
z_t = sqrt(ᾱ_t)·z0 + sqrt(1−ᾱ_t)·ε; e = text embedding of the photo's prompt; ε_θ = the UNet with the LoRA.
One training step:
  1. instance loss   ‖ε_θ(z_t, t, e_instance) − ε‖²  on a batch of subject photos (for v-prediction priors the
                     target is v = sqrt(ᾱ_t)·ε − sqrt(1−ᾱ_t)·z0);
  2. prior preservation (optional): the same loss on images the prior itself drew for the class prompt ("a dog"),
     weighted by `prior_preservation.weight`, so that the LoRA does not turn every dog into this one;
  3. AdamW on the LoRA matrices only (the prior's own weights stay frozen), gradients clipped.
Latents of the photos are encoded once (their mean and standard deviation); each step draws z0 from them.
Every random draw comes from one seeded CPU generator that the checkpoint carries, so a resumed run ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lucidkit.errors import UserError
from lucidkit.lora.adapters import WEIGHTS_NAME, attach_lora, check_adapter_fits, save_lora
from lucidkit.lora.config import TrainLoraConfig, check_config, class_prompt, instance_prompt
from lucidkit.lora.photos import prepare_subject, read_subject
from lucidkit.lora.train import (
    build_batch,
    class_images,
    load_checkpoint,
    new_state,
    save_checkpoint,
    train_step,
    write_grid,
)
from lucidkit.runs import CHECKPOINT_NAME


@dataclass
class LoraResult:
    folder: Path
    weights: Path
    steps: int
    images: int
    seconds: float


def run(cfg: TrainLoraConfig, folder: Path, resume: bool = False, quiet: bool = False,
        announce=lambda message: None) -> LoraResult:
    """Train (or resume training) a LoRA into `folder`, which `runs.prepare_run_dir` has checked.

    Photos are opened and the prior loads before anything is written, so bad input leaves no half-made run folder.
    `announce(message)` reports what happens (the command prints it).
    """
    from lucidkit import export, runs
    from lucidkit.devices import pick_device
    from lucidkit.prior.core import DiffusionPrior

    check_config(cfg)
    prompt = instance_prompt(cfg.data)
    if cfg.prior_preservation.enabled:
        class_prompt(cfg)  # fail now, not after loading the prior
    timer = runs.Timer()
    opened, skipped = read_subject(cfg.images, cfg.data.skip_bad_images)
    prior = DiffusionPrior.load(cfg.prior.model, device=pick_device(cfg.prior.device), dtype=cfg.prior.precision,
                                config=cfg.prior.config, tokenizer=cfg.prior.tokenizer)
    load_seconds = timer.elapsed()
    resolution = cfg.data.resolution or prior.resolution
    multiple = prior.vae_scale_factor * 2 ** (len(prior.unet.config.block_out_channels) - 1)
    if resolution % multiple:
        raise UserError(f"data.resolution {resolution} must be a multiple of {multiple} for {cfg.prior.model!r}")
    subject = prepare_subject(opened, skipped, cfg.data, resolution, prompt)
    check_adapter_fits(prior, cfg.lora)
    for message in subject.skipped:
        announce(f"Warning: skipping a photo: {message}")
    if not resume:
        runs.write_config(folder, cfg)
    announce(f"Run folder: {folder} ({len(subject.files)} photos of {prompt!r} at {resolution} px; prior "
             f"{cfg.prior.model!r} on {prior.device}, loaded in {load_seconds:.1f} s)")

    class_pixels, class_text, class_seconds = None, None, 0.0
    if cfg.prior_preservation.enabled:
        t0 = time.perf_counter()
        class_pixels, class_text = class_images(prior, cfg, folder, resolution, announce)
        class_seconds = time.perf_counter() - t0
    batch = build_batch(prior, subject, class_pixels, class_text, cfg.data.flip, cfg.lora.train_text_encoder)

    torch.manual_seed(cfg.seed)  # the LoRA's initial "A" matrices
    attach_lora(prior, cfg.lora)
    state = new_state(prior, cfg)
    if resume:
        load_checkpoint(state, folder)
        runs.check_resume_step(folder, state.step, cfg.train.steps)
        runs.write_config(folder, cfg)  # the step total or output settings may have changed
    start_step = state.step
    earlier = list(state.parts)  # the earlier sessions of a resumed run

    def checkpoint() -> None:
        state.parts = earlier + [runs.run_part(start_step, state.step, timer)]
        save_checkpoint(state, folder)
    scaler = torch.amp.GradScaler(prior.device.type, enabled=prior.dtype == torch.float16)
    validation_prompts = cfg.validation.prompts or [prompt]
    previews = folder / "previews"
    if cfg.validation.every > 0:
        previews.mkdir(exist_ok=True)
        if start_step == 0:  # what the prior draws before training, for comparison
            write_grid(prior, cfg.validation, validation_prompts, cfg.seed, previews / "step_000000.png")

    prior.unet.train()
    train_timer = runs.Timer()
    with runs.Progress(cfg.train.steps, start_step, "train-lora", quiet=quiet, log_every=50) as progress, \
            runs.checkpoint_on_interrupt(checkpoint, lambda: state.step, cfg.train.steps,
                                         f"lucidkit train-lora --resume {folder}"):
        while state.step < cfg.train.steps:
            loss = train_step(prior, state, batch, cfg, scaler)
            progress(state, {"loss": state.loss_ema if state.loss_ema is not None else loss})
            if cfg.validation.every > 0 and state.step % cfg.validation.every == 0:
                write_grid(prior, cfg.validation, validation_prompts, cfg.seed, previews / f"step_{state.step:06d}.png")
            if cfg.output.checkpoint_every > 0 and state.step % cfg.output.checkpoint_every == 0:
                checkpoint()
    train_seconds = train_timer.elapsed()
    prior.unet.eval()
    checkpoint()
    weights = save_lora(prior, folder, cfg.lora.train_text_encoder)
    write_grid(prior, cfg.validation, validation_prompts, cfg.seed, folder / "preview.png")

    n_params = sum(p.numel() for p in state.params.values())
    manifest = {
        **runs.manifest_header("train-lora", cfg.seed, prior),
        "instance_prompt": prompt,
        "token": cfg.data.token,
        "token_pieces": prior.tokenizer.tokenize(cfg.data.token) if cfg.data.token else [],
        "class_prompt": class_text,
        "images": subject.files,
        "captions": {f: p for f, p in zip(subject.files, subject.prompts) if p != prompt},
        "skipped": subject.skipped,
        "resolution": resolution,
        "steps": state.step,
        "resumed_from_step": start_step or None,
        "final_loss": state.loss_ema,
        "lora": {"file": weights.name, "bytes": weights.stat().st_size, "parameters": n_params,
                 "rank": cfg.lora.rank, "alpha": cfg.lora.alpha or cfg.lora.rank,
                 "unet_targets": cfg.lora.unet_targets,
                 "text_encoder_targets": cfg.lora.text_encoder_targets if cfg.lora.train_text_encoder else []},
        "use_with": f'lucidkit generate "{prompt}" --model {cfg.prior.model} --lora {folder} --lora-scale 1.0',
        "timings": {"load_prior_s": load_seconds, "class_images_s": class_seconds, "train_s": train_seconds,
                    "s_per_step": train_seconds / max(state.step - start_step, 1),
                    **runs.total_timings(earlier + [runs.run_part(start_step, state.step, timer)])},
        "outputs": [WEIGHTS_NAME, "preview.png", "config.yaml", CHECKPOINT_NAME],
        "versions": export.package_versions(),
    }
    export.write_json(folder / "manifest.json", manifest)
    return LoraResult(folder=folder, weights=weights, steps=state.step, images=len(subject.files),
                      seconds=manifest["timings"]["total_s"])
