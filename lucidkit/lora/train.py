"""One DreamBooth training step and what it needs: class images from the prior, latent moments, tokens,
the diffusion loss, the trainable state and its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from lucidkit.errors import UserError
from lucidkit.lora.config import TrainLoraConfig, ValidationConfig, class_prompt
from lucidkit.lora.photos import SubjectImages, _image_files, fit_image, read_image
from lucidkit.prior.sampling import sample_images
from lucidkit.runs import CHECKPOINT_NAME, read_checkpoint, write_checkpoint


def class_images(prior, cfg: TrainLoraConfig, folder: Path, resolution: int, log) -> tuple[torch.Tensor, str]:
    """[M, 3, R, R] prior-preservation images: those already in the class folder, topped up with samples the prior
    draws for the class prompt (saved as class_NNNN.png, so later runs and resumes reuse them)."""
    from lucidkit.export import write_png

    pp = cfg.prior_preservation
    prompt = class_prompt(cfg)
    class_dir = Path(pp.class_dir).expanduser() if pp.class_dir else folder / "class_images"
    class_dir.mkdir(parents=True, exist_ok=True)
    have = _image_files(class_dir)
    missing = pp.num_images - len(have)
    if missing > 0:
        log(f"Drawing {missing} class images of {prompt!r} with the prior into {class_dir}")
        new = sample_images(prior, [prompt], missing, pp.sample_steps, pp.guidance_scale, seed=cfg.seed + 1 + len(have))
        for i, img in enumerate(new):
            write_png(class_dir / f"class_{len(have) + i:04d}.png", img)
        have = _image_files(class_dir)
    images = [fit_image(read_image(p), resolution, "center") for p in have[: pp.num_images]]
    return torch.stack(images), prompt  # [M, 3, R, R]


def write_grid(prior, cfg: ValidationConfig, prompts: list[str], seed: int, path: Path) -> Path:
    """Sample each prompt `images_per_prompt` times (fixed seeds) into one grid: a row per prompt."""
    from lucidkit.export import preview_grid, write_png

    images = sample_images(prior, prompts, cfg.images_per_prompt, cfg.steps, cfg.guidance_scale, seed)
    return write_png(path, preview_grid(images, max_cols=cfg.images_per_prompt))


# ----------------------------------------------------------------------------------------------------------
# training


@torch.no_grad()
def latent_moments(prior, images: torch.Tensor, chunk: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent mean and standard deviation (`DiffusionPrior.latent_posterior`) of images [N, 3, R, R] in [0, 1],
    each [N, C, R/f, R/f] on the CPU, encoded `chunk` at a time."""
    parts = [prior.latent_posterior(images[start:start + chunk]) for start in range(0, len(images), chunk)]
    return torch.cat([mean.cpu() for mean, _ in parts]), torch.cat([std.cpu() for _, std in parts])


def tokenize(prior, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask [n, L] of `prompts`, padded/cut to the prior's L tokens (as `embed` does)."""
    tokens = prior.tokenizer(prompts, padding="max_length", max_length=prior.max_tokens, truncation=True,
                             return_tensors="pt")
    return tokens.input_ids, tokens.attention_mask


def encode_text(prior, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Text embeddings [n, L, D] of token ids (gradients flow into a text-encoder LoRA when it trains)."""
    use_mask = getattr(prior.text_encoder.config, "use_attention_mask", False)
    out = prior.text_encoder(ids.to(prior.device), attention_mask=mask.to(prior.device) if use_mask else None)[0]
    return out  # [n, L, D]


def diffusion_loss(prior, z0: torch.Tensor, emb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-sample denoising loss [B] of the UNet (with its LoRA) on clean latents z0 [B, C, h, w]:
    ‖ε_θ(z_t, t, e) − target‖² with t uniform, target ε (or v for v-prediction priors). Noise and t are drawn
    on the CPU from `generator`, so runs are reproducible on any device."""
    batch = z0.shape[0]
    noise = torch.randn(z0.shape, generator=generator).to(prior.device)  # [B, C, h, w]
    t = torch.randint(0, prior.num_train_timesteps, (batch,), generator=generator).to(prior.device)  # [B]
    a = prior.alphas_cumprod[t].view(-1, 1, 1, 1)  # [B, 1, 1, 1]  ᾱ_t
    z0 = z0.to(prior.device)
    zt = a.sqrt() * z0 + (1 - a).sqrt() * noise  # [B, C, h, w]
    target = noise if prior.prediction_type == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * z0
    autocast = prior.device.type == "cuda" and prior.dtype != torch.float32
    with torch.autocast(prior.device.type, dtype=prior.dtype, enabled=autocast):
        pred = prior.unet(zt.to(prior.dtype), t, encoder_hidden_states=emb.to(prior.dtype), return_dict=False)[0]
    return ((pred.float() - target) ** 2).mean(dim=(1, 2, 3))  # [B]


@dataclass
class LoraState:
    """What a checkpoint restores: the LoRA matrices, the optimiser, the random generator and the step."""

    params: dict[str, torch.nn.Parameter]  # "unet.<name>" / "text_encoder.<name>" -> trainable LoRA matrix
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    loss_ema: float | None = None  # running mean of the training loss, for the progress bar and the manifest
    parts: list = field(default_factory=list)  # the sessions of the run so far (`runs.run_part`), for the manifest


def trainable_params(prior) -> dict[str, torch.nn.Parameter]:
    return {f"{part}.{name}": p for part, model in (("unet", prior.unet), ("text_encoder", prior.text_encoder))
            for name, p in model.named_parameters() if p.requires_grad}


def new_state(prior, cfg: TrainLoraConfig) -> LoraState:
    params = trainable_params(prior)
    unet = [p for k, p in params.items() if k.startswith("unet.")]
    text = [p for k, p in params.items() if k.startswith("text_encoder.")]
    groups = [{"params": unet, "lr": cfg.train.learning_rate}]
    if text:
        groups.append({"params": text, "lr": cfg.train.text_encoder_learning_rate or cfg.train.learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.train.weight_decay)
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    return LoraState(params, optimizer, torch.Generator().manual_seed(cfg.seed))


def save_checkpoint(state: LoraState, folder: Path) -> Path:
    """`checkpoint.pt` (LoRA matrices, optimiser, generator, step), written atomically."""
    return write_checkpoint(folder, {
        "step": state.step,
        "lora": {k: p.detach().cpu() for k, p in state.params.items()},
        "optimizer": state.optimizer.state_dict(),
        "generator": state.generator.get_state(),
        "loss_ema": state.loss_ema,
        "parts": state.parts,
    })


def load_checkpoint(state: LoraState, folder: Path) -> LoraState:
    """Restore `state` (freshly built from the same config) from `folder/checkpoint.pt` (safe load)."""
    path = folder / CHECKPOINT_NAME
    payload = read_checkpoint(folder)
    if set(payload["lora"]) != set(state.params):
        raise UserError(f"cannot resume: {path} holds other LoRA layers than {folder / 'config.yaml'} describes")
    with torch.no_grad():
        for k, p in state.params.items():
            p.copy_(payload["lora"][k])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.generator.set_state(payload["generator"])
    state.step, state.loss_ema = int(payload["step"]), payload.get("loss_ema")
    state.parts = list(payload.get("parts", []))
    return state


@dataclass
class Batch:
    """Everything a step draws from: latent moments and token ids of the photos (and of the class images)."""

    mean: torch.Tensor  # [N, C, h, w]
    std: torch.Tensor  # [N, C, h, w]
    ids: torch.Tensor  # [N, L]
    mask: torch.Tensor  # [N, L]
    class_mean: torch.Tensor | None = None  # [M, C, h, w]
    class_std: torch.Tensor | None = None  # [M, C, h, w]
    class_ids: torch.Tensor | None = None  # [1, L]
    class_mask: torch.Tensor | None = None  # [1, L]
    cache: dict = field(default_factory=dict)  # token-id tuple -> embedding [L, D] (frozen text encoder)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Cached embeddings [B, L, D] of token ids [B, L]."""
        return torch.stack([self.cache[tuple(row.tolist())] for row in ids])  # [B, L, D]


def build_batch(prior, subject: SubjectImages, class_pixels: torch.Tensor | None, class_text: str | None,
                flip: bool, train_text_encoder: bool) -> Batch:
    """Encode the photos once (and their mirror images with `flip`); tokenize (and, for a frozen text encoder,
    embed) every prompt once."""
    images, prompts = subject.images, subject.prompts
    if flip:
        images, prompts = torch.cat([images, images.flip(-1)]), prompts + prompts  # [2N, 3, R, R]
    mean, std = latent_moments(prior, images)
    ids, mask = tokenize(prior, prompts)
    batch = Batch(mean, std, ids, mask)
    texts = list(dict.fromkeys(prompts))
    if class_pixels is not None:
        batch.class_mean, batch.class_std = latent_moments(prior, class_pixels)
        batch.class_ids, batch.class_mask = tokenize(prior, [class_text])
        texts.append(class_text)
    if not train_text_encoder:
        with torch.no_grad():
            t_ids, t_mask = tokenize(prior, texts)
            emb = encode_text(prior, t_ids, t_mask)  # [n, L, D]
        batch.cache = {tuple(row.tolist()): e for row, e in zip(t_ids, emb)}
    return batch


def train_step(prior, state: LoraState, batch: Batch, cfg: TrainLoraConfig, scaler) -> float:
    """One optimiser step (steps 1–3 of the module doc); returns the loss."""
    g, train = state.generator, cfg.train
    idx = torch.randint(0, batch.mean.shape[0], (train.batch_size,), generator=g)  # [B]
    z0 = batch.mean[idx] + batch.std[idx] * torch.randn(batch.mean[idx].shape, generator=g)  # [B, C, h, w]
    ids, mask = batch.ids[idx], batch.mask[idx]  # [B, L]
    if batch.class_mean is not None:
        cidx = torch.randint(0, batch.class_mean.shape[0], (train.batch_size,), generator=g)  # [B]
        cz0 = batch.class_mean[cidx] + batch.class_std[cidx] * torch.randn(batch.class_mean[cidx].shape, generator=g)
        z0 = torch.cat([z0, cz0])  # [2B, C, h, w]
        ids, mask = torch.cat([ids, batch.class_ids.expand(len(cidx), -1)]), torch.cat(
            [mask, batch.class_mask.expand(len(cidx), -1)])
    if cfg.lora.train_text_encoder:
        emb = encode_text(prior, ids, mask)  # [B', L, D] with grad into the text-encoder LoRA
    else:
        emb = batch.embed(ids)  # [B', L, D] cached
    per_sample = diffusion_loss(prior, z0, emb, g)  # [B']
    loss = per_sample[: train.batch_size].mean()
    if batch.class_mean is not None:
        loss = loss + cfg.prior_preservation.weight * per_sample[train.batch_size:].mean()
    warm = min(1.0, (state.step + 1) / train.warmup_steps) if train.warmup_steps else 1.0
    for group in state.optimizer.param_groups:
        group["lr"] = group["base_lr"] * warm
    state.optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if train.max_grad_norm > 0:
        scaler.unscale_(state.optimizer)
        torch.nn.utils.clip_grad_norm_(list(state.params.values()), train.max_grad_norm)
    scaler.step(state.optimizer)
    scaler.update()
    state.step += 1
    value = float(loss.detach())
    state.loss_ema = value if state.loss_ema is None else 0.95 * state.loss_ema + 0.05 * value
    return value
