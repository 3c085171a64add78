"""The toy prior's parts, in Stable Diffusion's architecture at toy size, and the pipeline folder they make.

| part | class | size |
|---|---|---|
| VAE | diffusers `AutoencoderKL`, 3 blocks (32, 64, 96), 1 layer each | 64x64x3 -> 16x16x4 latents (x4 down) |
| text encoder | transformers `CLIPTextModel`, hidden 128, 3 layers, 4 heads, 77 positions | trained from scratch |
| UNet | diffusers `UNet2DConditionModel`, (64, 128, 128), 2 layers, cross-attention 128 | sample_size 16 |
| scheduler | `DDIMScheduler`, SD's schedule: scaled-linear 0.00085 -> 0.012, 1000 steps, epsilon, steps_offset 1 | |

About 11.1M parameters in all (VAE 1.7M, text encoder 0.7M, UNet 8.75M): 22 MB in fp16.
`save_pipeline` writes a standard `StableDiffusionPipeline` folder (no safety checker) in fp16 safetensors, so
``StableDiffusionPipeline.from_pretrained(folder)`` samples from it and the engine loads it like SD 2.1.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lucidkit.arch import make_scheduler
from lucidkit.export import publish, staging_folder
from tools.toyworld.tokenizer import MODEL_MAX_LENGTH

LATENT_CHANNELS = 4
IMAGE_SIZE = 64
LATENT_SIZE = 16


def make_vae(scaling_factor: float = 1.0):
    """AutoencoderKL downsampling x4 (three blocks): [B,3,64,64] in [-1,1] <-> [B,4,16,16] latents."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 96),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=32,
        sample_size=IMAGE_SIZE,
        scaling_factor=scaling_factor,
    )


def make_text_encoder(vocab_size: int, bos_token_id: int, eos_token_id: int, pad_token_id: int):
    """A small CLIPTextModel (hidden 128, 3 layers, 4 heads, 77 positions); random weights."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=MODEL_MAX_LENGTH,
        projection_dim=128,
        hidden_act="gelu",
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    return CLIPTextModel(config)


def make_unet():
    """UNet2DConditionModel on 16x16x4 latents with cross-attention to 128-wide text embeddings."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(64, 128, 128),
        layers_per_block=2,
        cross_attention_dim=128,
        attention_head_dim=(2, 4, 4),  # diffusers reads this as the number of heads: 32 channels per head
        norm_num_groups=32,
    )


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def make_pipeline(unet, vae, text_encoder, tokenizer, scheduler=None):
    """A StableDiffusionPipeline of these parts, without safety checker."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler or make_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_pipeline(pipe, folder: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """Save ``pipe`` as a diffusers folder with weights in ``dtype`` (safetensors), atomically: written to a
    temporary sibling, then renamed over ``folder``. The tokenizer is saved with every CLIP file format."""
    from tools.toyworld.tokenizer import save_tokenizer

    tmp = staging_folder(folder)
    original = {name: next(getattr(pipe, name).parameters()).dtype for name in ("unet", "vae", "text_encoder")}
    pipe.to(dtype=dtype)
    try:
        pipe.save_pretrained(tmp, safe_serialization=True)
    finally:
        for name, dt in original.items():
            getattr(pipe, name).to(dtype=dt)
    save_tokenizer(pipe.tokenizer, tmp / "tokenizer")
    return publish(tmp, folder)


def folder_size_bytes(folder: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
