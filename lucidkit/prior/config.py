"""Which prior a run uses and how it runs (`PriorConfig`, the `prior:` section of every run's config), and loading
it with its LoRA and speed options (`load_prior`)."""

from __future__ import annotations

from dataclasses import dataclass

from lucidkit.devices import pick_device
from lucidkit.prior.modes import compile_mode


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
    compile: bool | str = "off"
    """CUDA only: 'off' (eager), 'full' (torch.compile + CUDA graphs: minutes of start-up, fastest updates),
    'graphs' (eager UNet as CUDA graphs: seconds of start-up), 'regional' (compiled repeated blocks + CUDA
    graphs) or 'encoder' (the VAE encoder compiled, the UNet as in 'graphs'); true = 'full', false = 'off'."""
    low_memory: bool = False
    """Fit small GPUs: VAE gradient checkpointing, CFG branches one at a time, text encoder moved to the CPU."""

    def __post_init__(self):
        self.compile = compile_mode(self.compile)  # YAML true/false of older configs name 'full'/'off'


def load_prior(cfg: PriorConfig):
    """The prior a run asks for, with its LoRA and speed options applied."""
    from lucidkit.prior.core import DiffusionPrior

    prior = DiffusionPrior.load(cfg.model, device=pick_device(cfg.device), dtype=cfg.precision, config=cfg.config,
                                tokenizer=cfg.tokenizer)
    if cfg.lora:
        prior.load_lora(cfg.lora, scale=cfg.lora_scale)
    if cfg.fast_path:
        prior.enable_fast_path(compile=cfg.compile)
    if cfg.low_memory:
        prior.enable_low_memory()
    return prior
