"""Train the toy pose ControlNet: OpenPose skeleton images -> the shipped toy prior draws a person in that pose.

    python -m tools.toyworld.train_controlnet --out outputs/toy-controlnet      # GPU: a few minutes
    python -m tools.toyworld.train_controlnet --out /tmp/cn --smoke              # CPU: tiny, under a minute
    python -m tools.toyworld.train_controlnet --out DIR --install                # also -> samples/
    tools/gpu/gpu_controlnet.sh                                                  # the one GPU call

Steps (each logged to ``DIR/controlnet_log.txt``):
1. data: ``--poses`` random poses of the built-in body (`lucidkit.body.pose.random_pose`) in the toy palette,
   ``--views`` toy-world cameras each, rendered with lucidkit's rasteriser, with their OpenPose condition images
   (`lucidkit.toyworld.people`); held-out poses from another seed;
2. latents of every view on a random recipe background (the toy VAE, frozen); caption embeddings ("a red person",
   with the toy world's view suffixes and empty / suffix-free shares) from the frozen text encoder;
3. a diffusers ``ControlNetModel.from_unet`` copy of the toy UNet's encoder (zero-initialised outputs; its
   condition encoder downsamples x4: 64 px skeleton -> 16x16 latents), trained on epsilon prediction with the
   UNet frozen; AdamW, warm-up + cosine;
4. the folder ``DIR/toy-controlnet-pose`` (fp16 safetensors);
5. the measurement, on held-out poses: samples of the prior (DDIM, CFG 7.5, the same seeds) with and without the
   ControlNet; the foreground of each sample (pixels that differ from its border colour) against the condition
   body's silhouette (render alpha > 0.5): mean IoU, and how often the foreground's colour is the prompt's.
   Written to ``DIR/controlnet_eval.json`` and a PNG grid (condition | with | without | ground truth).

Reproducible: the seed fixes the poses, cameras, backgrounds, batches and noise (drawn on the CPU); the step count
fixes the schedule (``--minutes`` shortens it to fit, and logs the count).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from lucidkit.export import publish, staging_folder
from lucidkit.models import toy_prior_dir
from lucidkit.toyworld import captions as cap
from lucidkit.toyworld.objects import COLOURS
from lucidkit.toyworld.people import COLOUR_NAMES, person_prompt, render_people
from tools.toyworld.train import Log, StepBudget, encode_pool, warmup_cosine

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
GUIDANCE = 7.5


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs/toy-controlnet", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help='"cuda", "cpu" or "auto"')
    p.add_argument("--poses", type=int, default=1000, help="training poses")
    p.add_argument("--views", type=int, default=8, help="views per training pose")
    p.add_argument("--heldout", type=int, default=48, help="held-out poses (one view each) for the measurement")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--minutes", type=float, default=None, help="cap on the training phase's wall-clock time")
    p.add_argument("--probe", type=int, default=256, help="fixed held-out noisy latents for the epsilon error")
    p.add_argument("--sample-steps", type=int, default=30, help="DDIM steps of the measurement")
    p.add_argument("--install", action="store_true", help="also publish the ControlNet to samples/toy-controlnet-pose")
    p.add_argument("--smoke", action="store_true", help="tiny sizes for a CPU check of the whole script")
    args = p.parse_args(argv)
    if args.smoke:
        args.poses, args.views, args.heldout, args.steps, args.batch = 3, 2, 2, 3, 2
        args.sample_steps, args.probe = 2, 4
    return args


def load_prior(device: torch.device):
    """The toy prior's parts, fp32, frozen, and its scheduler."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = toy_prior_dir()
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32)
    text = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32)
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    scheduler = DDIMScheduler.from_pretrained(folder / "scheduler")
    for m in (unet, vae, text):
        m.to(device).eval().requires_grad_(False)
    return unet, vae, text, tokenizer, scheduler


@torch.no_grad()
def caption_embeddings(text, tokenizer, device) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Embeddings [n, 77, D] of every caption, the caption table [colours, 4] (`captions.sample_caption_ids`'s
    layout: no suffix, front, side, back) and the caption list (index 0 is the empty caption)."""
    texts, table = [""], torch.zeros(len(COLOUR_NAMES), 4, dtype=torch.long)
    for i, colour in enumerate(COLOUR_NAMES):
        for j, view in enumerate((None,) + cap.VIEWS):
            table[i, j] = len(texts)
            texts.append(cap.with_view(person_prompt(colour), view))
    ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    return text(ids)[0], table, texts


def batch_maker(pool, latents, embeddings, table, alphas, device):
    """make(generator, size) -> (x_t, t, eps, emb, cond): noisy latents of random pool views on SD's schedule, their
    timesteps, noise, caption embeddings (the toy caption rule) and OpenPose conditions [B, 3, H, W]."""
    latent_mean, latent_std, scaling = latents

    def make(gen: torch.Generator, size: int):
        index = torch.randint(0, len(pool), (size,), generator=gen).to(device)
        noise_z = torch.randn(size, *latent_mean.shape[1:], generator=gen).to(device)
        z0 = (latent_mean[index].float() + latent_std[index].float() * noise_z) * scaling  # [B, 4, 16, 16]
        eps = torch.randn(z0.shape, generator=gen).to(device)
        t = torch.randint(0, len(alphas), (size,), generator=gen).to(device)
        a = alphas[t].view(-1, 1, 1, 1)
        u = torch.rand(size, generator=gen).to(device)
        ids = cap.sample_caption_ids(table, pool.colour_index[index], pool.azimuth_deg[index], u)  # [B]
        cond = (pool.condition[index].float() / 255).permute(0, 3, 1, 2)  # [B, 3, H, W]
        return a.sqrt() * z0 + (1 - a).sqrt() * eps, t, eps, embeddings[ids], cond

    return make


def predict(unet, controlnet, x_t, t, eps, emb, cond):
    """The UNet's noise prediction, with the ControlNet's residuals unless `controlnet` is None."""
    extra = {}
    if controlnet is not None:
        down, mid = controlnet(x_t, t, encoder_hidden_states=emb, controlnet_cond=cond, return_dict=False)
        extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
    return unet(x_t, t, encoder_hidden_states=emb, **extra).sample


def autocast(device: torch.device):
    """bf16 autocast on CUDA; plain fp32 on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else \
        torch.autocast("cpu", enabled=False)


@torch.no_grad()
def probe_loss(unet, controlnet, batch, device) -> float:
    """Mean squared epsilon error on a fixed batch (in chunks of 64)."""
    losses = []
    for i in range(0, batch[0].shape[0], 64):
        part = [b[i:i + 64] for b in batch]
        with autocast(device):
            pred = predict(unet, controlnet, *part)
        losses.append(torch.nn.functional.mse_loss(pred.float(), part[2], reduction="sum").item())
    return sum(losses) / batch[2].numel()


def train(args, controlnet, unet, make_batch, device, log) -> int:
    """Epsilon prediction through the frozen UNet with the ControlNet's residuals; returns the step count."""
    controlnet.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(controlnet.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed + 101)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    seconds = None if args.minutes is None else 60 * args.minutes
    budget = StepBudget(args.steps, seconds, sync, log, "controlnet")
    step, running = 0, []
    while step < budget.total:
        optimizer.zero_grad(set_to_none=True)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * warmup_cosine(step, budget.total, warmup=min(100, budget.total))
        batch = make_batch(gen, args.batch)
        with autocast(device):
            pred = predict(unet, controlnet, *batch)
        loss = torch.nn.functional.mse_loss(pred.float(), batch[2])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        optimizer.step()
        running.append(loss.item())
        step += 1
        budget.after_step(step)
        if step % 200 == 0 or step == budget.total:
            log(f"controlnet step {step}/{budget.total} loss {np.mean(running):.4f}")
            running = []
    controlnet.eval().requires_grad_(False)
    return step


def foreground(images: torch.Tensor, threshold: float = 0.15) -> torch.Tensor:
    """[B, H, W] bool: pixels whose colour differs from the image's border colour (median of the edge pixels)."""
    edge = torch.cat([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], dim=1)  # [B, 4W, 3]
    background = edge.median(dim=1).values  # [B, 3]
    return (images - background[:, None, None]).abs().amax(-1) > threshold


def colour_of(images: torch.Tensor, masks: torch.Tensor) -> list[str]:
    """The palette colour nearest (by direction in RGB) to the median foreground colour of each image."""
    names, palette = list(COLOURS), torch.nn.functional.normalize(torch.tensor(list(COLOURS.values())), dim=1)
    out = []
    for image, mask in zip(images, masks):
        pixels = image[mask] if mask.any() else image.reshape(-1, 3)
        rgb = torch.nn.functional.normalize(pixels.median(0).values, dim=0)
        out.append(names[int((palette @ rgb).argmax())])
    return out


@torch.no_grad()
def measure(args, parts, controlnet, pool, device) -> dict:
    """Held-out poses: silhouette IoU and colour match of prior samples with vs without the ControlNet."""
    from diffusers import StableDiffusionControlNetPipeline, StableDiffusionPipeline

    unet, vae, text, tokenizer, scheduler = parts
    pool = pool.to("cpu")
    prompts = [cap.with_view(person_prompt(COLOUR_NAMES[int(c)]), cap.view_of_azimuth(float(a)))
               for c, a in zip(pool.colour_index, pool.azimuth_deg)]
    common = dict(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                  safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    plain = StableDiffusionPipeline(**common).to(device)
    control = StableDiffusionControlNetPipeline(controlnet=controlnet, **common).to(device)
    cond = (pool.condition.float() / 255).permute(0, 3, 1, 2).to(device)
    results = {}
    for name, pipe, extra in (("with", control, {"image": cond}), ("without", plain, {})):
        pipe.set_progress_bar_config(disable=True)
        generators = [torch.Generator(device).manual_seed(args.seed * 1000 + i) for i in range(len(prompts))]
        images = pipe(prompt=prompts, num_inference_steps=args.sample_steps, guidance_scale=GUIDANCE,
                      generator=generators, output_type="pt", **extra).images.float().permute(0, 2, 3, 1).cpu()
        masks = foreground(images)
        truth = pool.alpha[..., 0].float() > 127
        iou = (masks & truth).sum((1, 2)).float() / (masks | truth).sum((1, 2)).clamp_min(1).float()
        colours = colour_of(images, masks)
        results[name] = {"iou_mean": float(iou.mean()), "iou_ge_0.7": float((iou >= 0.7).float().mean()),
                         "colour_match": float(np.mean([c == COLOUR_NAMES[int(i)]
                                                        for c, i in zip(colours, pool.colour_index)])),
                         "images": images}
    grid = [pool.condition.float() / 255, results["with"]["images"], results["without"]["images"],
            pool.composite(torch.arange(len(pool)), torch.ones(len(pool), 3))]
    rows = [torch.cat(list(g[:16]), dim=1) for g in grid]
    from PIL import Image

    Image.fromarray((torch.cat(rows, 0).numpy() * 255).round().astype(np.uint8)).save(
        Path(args.out) / "controlnet_samples.png")
    return {k: {m: v for m, v in r.items() if m != "images"} for k, r in results.items()} | {"n": len(prompts)}


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    log = Log(out / "controlnet_log.txt")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    torch.manual_seed(args.seed)
    log(f"config {json.dumps(vars(args))} device {device}")
    parts = load_prior(device)
    unet, vae, text, tokenizer, scheduler = parts
    log(f"tokenizer: 'person' -> {tokenizer.tokenize('person')} (one token = a word the prior was trained on)")

    start = time.time()
    pool, _ = render_people(args.poses, args.views, seed=args.seed, device=device, log=log)
    heldout, _ = render_people(args.heldout, 1, seed=args.seed + 7919, device=device, log=log)
    log(f"data: {len(pool)} views of {args.poses} poses, {len(heldout)} held out, in {time.time() - start:.0f} s")
    embeddings, table, _ = caption_embeddings(text, tokenizer, device)
    alphas = scheduler.alphas_cumprod.to(device)
    makers = {}
    for name, p in (("train", pool), ("heldout", heldout)):
        p = p.to(device)  # the whole pool on the device: uint8, 10k views of 64 px are ~120 MB
        latents = (*encode_pool(vae, p, args.seed, device), vae.config.scaling_factor)
        makers[name] = batch_maker(p, latents, embeddings, table.to(device), alphas, device)
    probe = makers["heldout"](torch.Generator().manual_seed(args.seed + 202), args.probe)  # fixed noise, t, captions

    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 64)).to(device)
    n_params = sum(p.numel() for p in controlnet.parameters())
    log(f"controlnet: {n_params / 1e6:.2f} M parameters ({2 * n_params / 1e6:.1f} MB in fp16)")
    loss_plain = probe_loss(unet, None, probe, device)
    steps = train(args, controlnet, unet, makers["train"], device, log)
    loss_control = probe_loss(unet, controlnet, probe, device)
    log(f"held-out epsilon MSE ({args.probe} fixed noisy latents): UNet alone {loss_plain:.4f}, "
        f"with ControlNet {loss_control:.4f}")

    tmp = staging_folder(out / "toy-controlnet-pose")
    controlnet.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    folder = publish(tmp, out / "toy-controlnet-pose")
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    log(f"saved {folder} ({size / 1e6:.1f} MB, {steps} steps)")
    if args.install:
        tmp = staging_folder(SAMPLES / "toy-controlnet-pose")
        controlnet.save_pretrained(tmp, safe_serialization=True)
        log(f"installed {publish(tmp, SAMPLES / 'toy-controlnet-pose')}")

    controlnet.to(torch.float32)
    report = measure(args, parts, controlnet, heldout, device) | {
        "steps": steps, "seed": args.seed, "size_mb": size / 1e6,
        "heldout_eps_mse": {"without": loss_plain, "with": loss_control}}
    (out / "controlnet_eval.json").write_text(json.dumps(report, indent=2) + "\n")
    w, wo = report["with"], report["without"]
    log(f"RESULT held-out silhouette IoU with ControlNet {w['iou_mean']:.3f} (>=0.7: {w['iou_ge_0.7']:.0%}), "
        f"without {wo['iou_mean']:.3f} (>=0.7: {wo['iou_ge_0.7']:.0%}); colour match {w['colour_match']:.0%} vs "
        f"{wo['colour_match']:.0%}; {report['n']} samples, {args.sample_steps} DDIM steps")


if __name__ == "__main__":
    main()
