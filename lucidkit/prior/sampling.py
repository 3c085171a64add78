"""Images sampled from a prior through diffusers' own `StableDiffusionPipeline` (DDIM, classifier-free guidance):
for class images and validation grids of `train-lora`, and for measuring the toy prior."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from lucidkit.prior.load import quiet_libraries

GUIDANCE = 7.5


def load_pipeline(prior_dir: str | Path, device: torch.device):
    """``StableDiffusionPipeline.from_pretrained`` in fp16 on CUDA, fp32 on CPU, progress bar off."""
    with quiet_libraries():  # the pipeline module's imports warn about image processors lucidkit never uses
        from diffusers import StableDiffusionPipeline

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    pipe = StableDiffusionPipeline.from_pretrained(str(prior_dir), torch_dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    if len(pipe.tokenizer) < 514:  # transformers can silently build a 2-token tokenizer from a bad folder
        raise ValueError(f"tokenizer of {prior_dir} has {len(pipe.tokenizer)} tokens; expected a CLIP vocabulary")
    return pipe


@torch.no_grad()
def sample_prompts(pipe, prompts: list[str], samples_per_prompt: int, steps: int, seed: int,
                   guidance: float = GUIDANCE, chunk: int = 1024) -> Tensor:
    """[P * S, H, W, 3] float images in [0, 1], prompt-major; sample i of the whole list uses seed ``seed * 1e6 + i``
    so results do not depend on the chunking."""
    device = pipe.device
    flat = [p for p in prompts for _ in range(samples_per_prompt)]
    images = []
    for start in range(0, len(flat), chunk):
        part = flat[start : start + chunk]
        generators = [torch.Generator(device).manual_seed(seed * 1_000_000 + start + i) for i in range(len(part))]
        out = pipe(prompt=part, num_inference_steps=steps, guidance_scale=guidance, generator=generators,
                   output_type="pt")
        images.append(out.images.float().permute(0, 2, 3, 1).cpu())  # [b, H, W, 3]
    return torch.cat(images)


def sample_images(prior, prompts: list[str], per_prompt: int, steps: int, guidance: float, seed: int) -> torch.Tensor:
    """[P * S, H, W, 3] float in [0, 1], prompt-major: DDIM samples of the prior as it is now (LoRA included),
    through diffusers' pipeline; sample i uses the seed `seed * 1e6 + i` (`sample_prompts`)."""
    from diffusers import DDIMScheduler

    pipe = prior.as_pipeline()
    pipe.scheduler = DDIMScheduler.from_config(prior.scheduler.config)  # its own step state
    pipe.set_progress_bar_config(disable=True)
    training = prior.unet.training
    prior.unet.eval(), prior.text_encoder.eval()
    try:
        with quiet_libraries():
            return sample_prompts(pipe, prompts, per_prompt, steps, seed, guidance=guidance, chunk=16)
    finally:
        prior.unet.train(training)
