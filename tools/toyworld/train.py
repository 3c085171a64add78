"""Train the toy prior (and the toy evaluator) from scratch on renders of the toy world.

    python -m tools.toyworld.train --out DIR --seed 0 [--minutes N]

Steps (each logged to ``DIR/train_log.txt``):
1. tokenizer: BPE merges learned on the caption vocabulary (`tokenizer.py`);
2. data: a pool of ``--views`` random views of each of the 74 world objects (more for the oriented ones),
   rendered with lucidkit's renderer from the `generate` camera distribution (premultiplied colour + alpha;
   backgrounds are drawn per use);
3. VAE: reconstruction (L1 + MSE) + a small KL term; then ``scaling_factor = 1 / std(latents)`` as SD does;
4. UNet + text encoder, jointly: epsilon prediction with min-SNR(5) weighting on SD's noise schedule, captions
   drawn per sample (10% empty for classifier-free guidance), EMA of both;
5. the pipeline folder ``DIR/toy-prior`` (fp16 safetensors);
6. the evaluator ``DIR/toy-evaluator`` (unless ``--no-evaluator``), and its accuracy on held-out renders;
7. quality (unless ``--no-quality``): samples from ``StableDiffusionPipeline`` classified by the evaluator,
   written to ``DIR/toy_prior_quality.txt`` (see `quality.py`).

Reproducible: the seed fixes the data, the initial weights, every batch and every noise draw, and the step counts
fix the schedule (up to the GPU's own non-determinism: cuDNN algorithm choice, atomics). ``--minutes`` caps the
wall-clock time of the three training phases (VAE 19%, diffusion 65%, evaluator 16%): a phase then measures its
speed after a few steps and shortens its schedule to fit, which makes the step count (logged) depend on the
machine; pass the logged step counts back to reproduce a run exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor

from lucidkit.arch import make_scheduler
from lucidkit.export import preview_grid, write_png
from lucidkit.toyworld import captions as cap
from lucidkit.toyworld.data import Pool, random_backgrounds, render_pool, seed_everything
from lucidkit.toyworld.objects import world_objects
from tools.toyworld import models


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved in the log and in ``train_summary.json``."""

    out: str = "outputs/toy-prior-train"
    """Output folder: toy-prior/, toy-evaluator/, train_log.txt, toy_prior_quality.txt, PNG grids."""
    seed: int = 0
    """Seeds the data, the weights and every random draw."""
    minutes: Optional[float] = None
    """Wall-clock cap for the three training phases together; None = run every configured step."""
    device: str = "auto"
    """"cuda", "cpu" or "auto" (CUDA when available)."""
    views: int = 1200
    """Training views rendered per object (74 objects)."""
    oriented_views_factor: int = 6
    """Oriented objects (house, penguin) get this many times more views: they are 2 of 74 objects, yet carry
    all the view-dependent detail the view prompts and the multi-face measurements rely on."""
    render_backend: str = "torch"
    """Rasteriser for the data: "torch" (lucidkit's reference, no compile step) or "auto" (gsplat on CUDA)."""
    heldout_views: int = 24
    """Held-out views per object (another seed) for the evaluator's and the VAE's accuracy."""
    vae_steps: int = 6000
    vae_batch: int = 128
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-5
    """Weight of the KL term (mean over latent elements) against the mean reconstruction error."""
    unet_steps: int = 15000
    unet_batch: int = 512
    unet_lr: float = 5e-4
    ema_decay: float = 0.999
    min_snr_gamma: float = 5.0
    compile_unet: bool = True
    """On CUDA, torch.compile the UNet (mode "reduce-overhead", CUDA graphs): a UNet this small is bound by
    kernel-launch overhead in eager mode. Falls back to eager if compiling fails."""
    evaluator_steps: int = 6000
    evaluator_batch: int = 256
    evaluator_lr: float = 2e-3
    quality_samples: int = 8
    """Samples per prompt in the quality measurement."""
    quality_steps: int = 50
    """DDIM steps in the quality measurement."""
    evaluator: bool = True
    """Train the evaluator (``--no-evaluator`` skips it, and with it the quality measurement)."""
    quality: bool = True
    """Measure the saved prior's samples with the evaluator (``--no-quality`` skips it)."""


class Log:
    """Print a message with the seconds since the start, and append it to a log file."""

    def __init__(self, path: Path):
        self.path = path
        self.start = time.time()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def __call__(self, message: str) -> None:
        line = f"[{time.time() - self.start:7.1f}s] {message}"
        print(line, flush=True)
        with self.path.open("a") as f:
            f.write(line + "\n")


class StepBudget:
    """A phase's step count: ``max_steps``, shortened to fit ``seconds`` once the speed is known (measured between
    steps `calibrate_from` and `calibrate_at`, after warm-up)."""

    calibrate_from = 10
    calibrate_at = 40

    def __init__(self, max_steps: int, seconds: Optional[float], sync: Callable[[], None], log=None, name=""):
        self.total = max_steps
        self.seconds = seconds
        self.sync = sync
        self.log = log
        self.name = name
        self.start = time.time()
        self._t0 = None

    def after_step(self, step: int) -> None:
        """Call after finishing step ``step`` (1-based)."""
        if self.seconds is None or step > self.calibrate_at:
            return
        if step == self.calibrate_from:
            self.sync()
            self._t0 = time.time()
        elif step == self.calibrate_at and self._t0 is not None:
            self.sync()
            per_step = (time.time() - self._t0) / (self.calibrate_at - self.calibrate_from)
            left = self.seconds - (time.time() - self.start)
            self.total = max(step + 1, min(self.total, step + int(left / per_step)))
            if self.log is not None:
                self.log(f"{self.name}: {1000 * per_step:.1f} ms/step -> {self.total} steps in the time budget")


def warmup_cosine(step: int, total: int, warmup: int, floor: float = 0.1) -> float:
    """LR multiplier: linear warm-up over ``warmup`` steps, then cosine from 1 down to ``floor`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _autocast(device: torch.device):
    """bf16 autocast on CUDA; plain fp32 on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _batch_images(pool: Pool, index: Tensor, generator: torch.Generator) -> Tensor:
    """[B, 3, H, W] in [0, 1]: pool entries on fresh random recipe backgrounds."""
    backgrounds = random_backgrounds(index.shape[0], generator)
    return pool.composite(index, backgrounds).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------------------------------------------------
# Phase 3: VAE
# --------------------------------------------------------------------------------------------------------------------


def train_vae(vae, pool: Pool, cfg: TrainConfig, device, seconds, log) -> dict:
    """Reconstruction (L1 + MSE on [-1, 1] images) + ``vae_kl_weight`` * KL; AdamW with warm-up + cosine."""
    vae.train().to(device)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    cpu_gen = torch.Generator().manual_seed(cfg.seed + 31)
    budget = StepBudget(cfg.vae_steps, seconds, _sync(device), log, "vae")
    step, stats = 0, {}
    while step < budget.total:
        _set_lr(optimizer, cfg.vae_lr * warmup_cosine(step, budget.total, warmup=100))
        index = torch.randint(0, len(pool), (cfg.vae_batch,), generator=cpu_gen).to(device)
        x = _batch_images(pool, index, cpu_gen) * 2 - 1  # [B, 3, 64, 64]
        with _autocast(device):
            posterior = vae.encode(x).latent_dist
            z = posterior.sample(generator=None)
            recon = vae.decode(z).sample
        recon = recon.float()
        l1 = (recon - x).abs().mean()
        mse = ((recon - x) ** 2).mean()
        kl = posterior.kl().mean() / posterior.mean[0].numel()  # mean over latent elements
        loss = l1 + mse + cfg.vae_kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        step += 1
        budget.after_step(step)
        if step % 250 == 0 or step == budget.total:
            l1, mse, kl = l1.item(), mse.item(), kl.item()
            psnr = -10 * math.log10(mse / 4)  # images in [-1, 1]: peak-to-peak 2
            stats = {"step": step, "l1": l1, "mse": mse, "kl": kl, "psnr_db": psnr}
            log(f"vae step {step}/{budget.total} l1 {l1:.4f} mse {mse:.5f} kl {kl:.3f} psnr {psnr:.2f} dB")
    vae.eval()
    stats["steps"] = step
    return stats


@torch.no_grad()
def encode_pool(vae, pool: Pool, seed: int, device, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Latent posterior (mean, std) [N, 4, 16, 16] in fp16 of every pool image on one fixed random background."""
    generator = torch.Generator().manual_seed(seed + 47)
    means, stds = [], []
    for start in range(0, len(pool), chunk):
        index = torch.arange(start, min(start + chunk, len(pool)), device=device)
        x = _batch_images(pool, index, generator) * 2 - 1
        with _autocast(device):
            dist = vae.encode(x).latent_dist
        means.append(dist.mean.to(torch.float16))
        stds.append(dist.std.to(torch.float16))
    return torch.cat(means), torch.cat(stds)


# --------------------------------------------------------------------------------------------------------------------
# Phase 4: UNet + text encoder
# --------------------------------------------------------------------------------------------------------------------


class EMA:
    """Exponential moving average of parameters, with the usual warm-up ``min(decay, (1 + n) / (10 + n))``."""

    def __init__(self, params: list[Tensor], decay: float):
        self.params = params
        self.shadow = [p.detach().clone().float() for p in params]
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.shadow, [p.detach().float() for p in self.params], 1 - decay)

    @torch.no_grad()
    def copy_to_params(self) -> None:
        for p, s in zip(self.params, self.shadow):
            p.copy_(s.to(p.dtype))


def train_diffusion(unet, text_encoder, latent_mean, latent_std, scaling_factor, pool: Pool, caption_ids: Tensor,
                    caption_table: Tensor, alphas_cumprod: Tensor, cfg: TrainConfig, device, seconds, log) -> dict:
    """Epsilon prediction on SD's schedule, min-SNR weighted; text encoder trained jointly. All unique captions are
    encoded once per step (``caption_ids`` [n_captions, 77]) and gathered per sample."""
    unet.train().to(device)
    text_encoder.train().to(device)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=0.01, fused=fused)
    ema = EMA(params, cfg.ema_decay)
    gen = torch.Generator(device).manual_seed(cfg.seed + 59)
    alphas_cumprod = alphas_cumprod.to(device)
    snr = alphas_cumprod / (1 - alphas_cumprod)  # [1000]
    weight_of_t = torch.clamp(snr, max=cfg.min_snr_gamma) / snr  # min-SNR for epsilon prediction
    object_index, azimuth = pool.object_index.to(device), pool.azimuth_deg.to(device)
    caption_ids, caption_table = caption_ids.to(device), caption_table.to(device)
    budget = StepBudget(cfg.unet_steps, seconds, _sync(device), log, "unet")
    forward = unet
    if cfg.compile_unet and device.type == "cuda":
        forward = torch.compile(unet, mode="reduce-overhead")
        log("unet: torch.compile (reduce-overhead); the first steps compile")
    step, stats = 0, {}
    while step < budget.total:
        _set_lr(optimizer, cfg.unet_lr * warmup_cosine(step, budget.total, warmup=300))
        b = cfg.unet_batch
        index = torch.randint(0, latent_mean.shape[0], (b,), device=device, generator=gen)
        z0 = latent_mean[index].float() + latent_std[index].float() * torch.randn(
            latent_mean[index].shape, device=device, generator=gen)
        z0 = z0 * scaling_factor  # [B, 4, 16, 16]
        u = torch.rand(b, device=device, generator=gen)
        ids = cap.sample_caption_ids(caption_table, object_index[index], azimuth[index], u)  # [B]
        t = torch.randint(0, 1000, (b,), device=device, generator=gen)
        noise = torch.randn(z0.shape, device=device, generator=gen)
        a = alphas_cumprod[t].view(b, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise

        def loss_of(forward):
            optimizer.zero_grad(set_to_none=True)  # before the forward: CUDA graphs reuse the gradients' memory
            if forward is not unet:
                torch.compiler.cudagraph_mark_step_begin()
            with _autocast(device):
                all_embeddings = text_encoder(caption_ids)[0]  # [n_captions, 77, 128]
                eps = forward(zt, t, encoder_hidden_states=all_embeddings[ids]).sample  # [B, 4, 16, 16]
            per_sample = ((eps.float() - noise) ** 2).mean(dim=(1, 2, 3))  # [B]
            loss = (per_sample * weight_of_t[t]).mean()
            loss.backward()
            return loss, per_sample

        try:
            loss, per_sample = loss_of(forward)
        except Exception as error:  # a compile failure shows up at the first call: carry on eagerly
            if forward is unet or step > 0:
                raise
            log(f"unet: torch.compile failed ({type(error).__name__}: {error}); training eagerly")
            forward = unet
            loss, per_sample = loss_of(forward)
        if step == 0:
            log("unet: first step done")
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        ema.update()
        step += 1
        budget.after_step(step)
        if step % 500 == 0 or step == budget.total:
            stats = {"step": step, "loss_weighted": loss.item(), "mse": per_sample.mean().item()}
            log(f"unet step {step}/{budget.total} loss(min-snr) {stats['loss_weighted']:.4f} "
                f"eps-mse {stats['mse']:.4f} "
                f"lr {optimizer.param_groups[0]['lr']:.2e}")
    ema.copy_to_params()
    unet.eval()
    text_encoder.eval()
    stats["steps"] = step
    return stats


# --------------------------------------------------------------------------------------------------------------------
# Phase 6: evaluator
# --------------------------------------------------------------------------------------------------------------------


def train_evaluator(pool: Pool, objects, cfg: TrainConfig, device, seconds, log):
    from lucidkit.toyworld import evaluator as ev

    net = ev.EvaluatorNet().to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.evaluator_lr, weight_decay=0.05)
    cpu_gen = torch.Generator().manual_seed(cfg.seed + 71)
    budget = StepBudget(cfg.evaluator_steps, seconds, _sync(device), log, "evaluator")
    step = 0
    while step < budget.total:
        _set_lr(optimizer, cfg.evaluator_lr * warmup_cosine(step, budget.total, warmup=100, floor=0.02))
        index = torch.randint(0, len(pool), (cfg.evaluator_batch,), generator=cpu_gen).to(device)
        x = ev.augment(_batch_images(pool, index, cpu_gen), cpu_gen)
        targets = ev.targets_of(objects, pool.object_index[index], pool.azimuth_deg[index])
        with _autocast(device):
            logits = net(x)
        loss, accuracy = ev.loss_and_accuracy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        budget.after_step(step)
        if step % 500 == 0 or step == budget.total:
            acc = " ".join(f"{k} {v:.3f}" for k, v in accuracy.items())
            log(f"evaluator step {step}/{budget.total} loss {loss.item():.4f} train-acc {acc}")
    return ev.ToyEvaluator(net.eval(), device), step


# --------------------------------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------------------------------


def run(cfg: TrainConfig) -> dict:
    """Run every phase; returns a summary dict (also written to ``DIR/train_summary.json``)."""
    from tools.toyworld.tokenizer import build_tokenizer

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "train_log.txt")
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    log(f"config {json.dumps(asdict(cfg))}")
    log(f"device {device} torch {torch.__version__}"
        + (f" {torch.cuda.get_device_name()}" if device.type == "cuda" else ""))
    seed_everything(cfg.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    phase_seconds = {k: (None if cfg.minutes is None else cfg.minutes * 60 * f)
                     for k, f in (("vae", 0.19), ("unet", 0.65), ("evaluator", 0.16))}
    summary: dict = {"config": asdict(cfg)}

    # 1. tokenizer
    tokenizer = build_tokenizer()
    objects = world_objects()
    captions, caption_table = cap.caption_table(objects)
    caption_ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt").input_ids  # [n_captions, 77]
    log(f"tokenizer: {len(tokenizer)} tokens; {len(objects)} objects; {len(captions)} captions")

    # 2. data
    t0 = time.time()
    views = [cfg.views * (cfg.oriented_views_factor if obj.oriented else 1) for obj in objects]
    pool = render_pool(objects, views, cfg.seed, device, log=log, backend=cfg.render_backend)
    heldout = render_pool(objects, cfg.heldout_views, cfg.seed + 1000, device, backend=cfg.render_backend)
    summary["render_seconds"] = time.time() - t0
    log(f"rendered {len(pool)} training + {len(heldout)} held-out views in {summary['render_seconds']:.1f}s")
    preview_gen = torch.Generator().manual_seed(cfg.seed + 5)
    preview_index = torch.randperm(len(pool), generator=preview_gen)[:64].to(device)
    write_png(out / "train_images.png", preview_grid(_batch_images(pool, preview_index, preview_gen).permute(0, 2, 3, 1), max_cols=8))

    # 3. VAE
    t0 = time.time()
    vae = models.make_vae()
    summary["vae"] = train_vae(vae, pool, cfg, device, phase_seconds["vae"], log)
    latent_mean, latent_std = encode_pool(vae, pool, cfg.seed, device)
    subset = torch.randperm(latent_mean.shape[0], generator=torch.Generator().manual_seed(cfg.seed + 3))[:8192]
    subset = subset.to(device)
    sample = latent_mean[subset].float() + latent_std[subset].float() * torch.randn_like(latent_mean[subset].float())
    scaling_factor = float(1.0 / sample.std())  # SD's convention: scaled latents have unit standard deviation
    vae.register_to_config(scaling_factor=scaling_factor)
    summary["vae"].update(seconds=time.time() - t0, scaling_factor=scaling_factor,
                          heldout_psnr_db=_vae_psnr(vae, heldout, cfg.seed, device))
    log(f"vae done: scaling_factor {scaling_factor:.4f}, held-out PSNR {summary['vae']['heldout_psnr_db']:.2f} dB")

    # 4. UNet + text encoder
    t0 = time.time()
    torch.manual_seed(cfg.seed + 1)
    unet = models.make_unet()
    text_encoder = models.make_text_encoder(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id,
                                            tokenizer.pad_token_id)
    scheduler = make_scheduler()
    summary["diffusion"] = train_diffusion(
        unet, text_encoder, latent_mean, latent_std, scaling_factor, pool, caption_ids, caption_table,
        scheduler.alphas_cumprod, cfg, device, phase_seconds["unet"], log)
    summary["diffusion"]["seconds"] = time.time() - t0
    del latent_mean, latent_std

    # 5. pipeline folder
    pipe = models.make_pipeline(unet, vae, text_encoder, tokenizer, scheduler)
    prior_dir = models.save_pipeline(pipe, out / "toy-prior")
    summary["params"] = {"vae": models.n_params(vae), "text_encoder": models.n_params(text_encoder),
                         "unet": models.n_params(unet)}
    summary["prior_bytes"] = models.folder_size_bytes(prior_dir)
    log(f"saved {prior_dir} ({summary['prior_bytes'] / 1e6:.2f} MB); params {summary['params']}")

    # 6. evaluator
    evaluator = None
    if cfg.evaluator:
        from lucidkit.toyworld.evaluator import heldout_accuracy

        t0 = time.time()
        evaluator, steps = train_evaluator(pool, objects, cfg, device, phase_seconds["evaluator"], log)
        gen = torch.Generator().manual_seed(cfg.seed + 83)
        all_index = torch.arange(len(heldout), device=device)
        white = heldout.composite(all_index, torch.ones(len(heldout), 3))
        recipe = heldout.composite(all_index, random_backgrounds(len(heldout), gen))
        acc_white = heldout_accuracy(evaluator, white, objects, heldout.object_index, heldout.azimuth_deg)
        acc_recipe = heldout_accuracy(evaluator, recipe, objects, heldout.object_index, heldout.azimuth_deg)
        summary["evaluator"] = {"steps": steps, "seconds": time.time() - t0,
                                "heldout_white": acc_white, "heldout_recipe_backgrounds": acc_recipe}
        evaluator.save(out / "toy-evaluator", extra={"training": {"steps": steps, "seed": cfg.seed,
                                                                  "heldout_white": acc_white,
                                                                  "heldout_recipe_backgrounds": acc_recipe}})
        log(f"evaluator held-out accuracy (white bg) {acc_white}")
        log(f"evaluator held-out accuracy (recipe bgs) {acc_recipe}")
    del pool

    # 7. quality of the saved prior
    if cfg.quality and evaluator is not None:
        from tools.toyworld.quality import measure_prior, write_report

        t0 = time.time()
        report = measure_prior(prior_dir, evaluator, device, samples_per_prompt=cfg.quality_samples,
                               steps=cfg.quality_steps, seed=cfg.seed, grid_path=out / "prior_samples.png")
        summary["quality"] = report["summary"]
        summary["quality"]["seconds"] = time.time() - t0
        write_report(report, out / "toy_prior_quality.txt", training=summary)
        log(f"quality {json.dumps(report['summary'])}")

    (out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    log("done")
    return summary


@torch.no_grad()
def _vae_psnr(vae, pool: Pool, seed: int, device) -> float:
    """Mean PSNR (dB) of VAE reconstructions (posterior mean) of pool images on random backgrounds."""
    generator = torch.Generator().manual_seed(seed + 97)
    index = torch.arange(len(pool), device=device)
    x = _batch_images(pool, index, generator) * 2 - 1
    with _autocast(device):
        recon = vae.decode(vae.encode(x).latent_dist.mean).sample.float()
    mse = ((recon.clamp(-1, 1) - x) ** 2).mean(dim=(1, 2, 3)) / 4  # [B] on a [0, 1] scale
    return float((-10 * torch.log10(mse.clamp_min(1e-10))).mean())


def parse_args(argv=None) -> TrainConfig:
    parser = argparse.ArgumentParser(prog="python -m tools.toyworld.train", description=__doc__.split("\n")[0])
    defaults = TrainConfig()
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        elif name == "minutes":
            parser.add_argument(flag, type=float, default=None)
        else:
            parser.add_argument(flag, type=type(value), default=value)
    return TrainConfig(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    run(parse_args())
