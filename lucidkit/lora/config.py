"""The configuration of `lucidkit train-lora` (presets/train-lora/*.yaml) and the prompts it implies."""

from __future__ import annotations

from dataclasses import dataclass, field

from lucidkit import config as config_lib
from lucidkit.errors import UserError

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # the attention projections of every transformer block
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


@dataclass
class DataConfig:
    """The subject photos and the prompts that name them."""

    token: str = "sks"
    """Rare word that names the subject (e.g. 'sks'); the instance prompt is built from it."""
    class_word: str = ""
    """What the subject is ('dog', 'toy'); used in the instance and class prompts."""
    prompt: str = ""
    """The whole instance prompt (overrides token/class_word), e.g. 'a photo of sks dog'."""
    instance_template: str = "a {token} {class_word}"
    """Instance prompt built from {token} and {class_word} when `prompt` is empty."""
    resolution: int = 0
    """Training image side in pixels; 0 = the prior's native resolution."""
    crop: str = "center"
    """'center' (scale the short side to the resolution, crop the middle) or 'pad' (fit inside, pad with white)."""
    flip: bool = False
    """Also train on mirrored photos (only for subjects without a handed side)."""
    min_size: int = 0
    """Smallest accepted photo side in pixels; 0 = half the training resolution."""
    skip_bad_images: bool = False
    """Skip unreadable, corrupt or too-small photos (each named in a warning) instead of stopping."""


@dataclass
class TrainPriorConfig:
    """The prior the LoRA is trained on (generate must later use the same one)."""

    model: str = "toy"
    """'toy' (shipped), 'sd21-base', 'sd15', a diffusers folder, a .safetensors file or a hub id."""
    config: str | None = None
    """Single .safetensors files only: a diffusers folder whose configs describe the checkpoint."""
    tokenizer: str | None = None
    """Single .safetensors files only: a folder holding the CLIP tokenizer."""
    precision: str = "auto"
    """Frozen weights and autocast: 'auto' (bf16 on CUDA, fp32 on CPU), 'fp32', 'bf16' or 'fp16'; the LoRA
    matrices always train in fp32."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda[:N]'."""


@dataclass
class AdapterConfig:
    """The LoRA matrices: where they go and their size."""

    rank: int = 8
    """Rank r of each LoRA update (more = more capacity, bigger file)."""
    alpha: float = 0.0
    """LoRA alpha (the update is scaled by alpha / rank); 0 = equal to the rank."""
    unet_targets: list[str] = field(default_factory=lambda: list(UNET_TARGETS))
    """UNet layers that get a LoRA, by name or name suffix (diffusers names)."""
    train_text_encoder: bool = False
    """Also train LoRA matrices on the text encoder."""
    text_encoder_targets: list[str] = field(default_factory=lambda: list(TEXT_ENCODER_TARGETS))
    """Text-encoder layers that get a LoRA when train_text_encoder is on."""


@dataclass
class TrainConfig:
    """The optimisation."""

    steps: int = 500
    """Number of optimiser steps."""
    batch_size: int = 1
    """Subject photos per step (plus as many class images with prior preservation)."""
    learning_rate: float = 1e-4
    """AdamW learning rate of the UNet's LoRA matrices."""
    text_encoder_learning_rate: float = 0.0
    """Learning rate of the text encoder's LoRA matrices; 0 = learning_rate."""
    warmup_steps: int = 0
    """Steps of linear learning-rate warm-up (then constant)."""
    weight_decay: float = 1e-2
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0 = off)."""


@dataclass
class PriorPreservationConfig:
    """Class images drawn by the prior itself keep the class ('dog') intact while the LoRA learns the subject."""

    enabled: bool = True
    """Train on class images too."""
    class_prompt: str = ""
    """Prompt of the class images; empty = `class_template` filled with data.class_word."""
    class_template: str = "a {class_word}"
    """Class prompt built from {class_word} when class_prompt is empty."""
    num_images: int = 100
    """Class images to use (generated once into class_dir, reused afterwards)."""
    class_dir: str = ""
    """Folder of class images (made if missing or short); empty = class_images/ in the output folder."""
    weight: float = 1.0
    """Weight of the class-image loss."""
    sample_steps: int = 25
    """DDIM steps per generated class image."""
    guidance_scale: float = 7.5
    """Classifier-free guidance of the class images."""


@dataclass
class ValidationConfig:
    """Samples of the validation prompts, rendered into a grid while training."""

    prompts: list[str] = field(default_factory=list)
    """Prompts to sample; empty = the instance prompt."""
    every: int = 100
    """Write previews/step_NNNNNN.png every this many steps (0 = only preview.png at the end)."""
    images_per_prompt: int = 4
    """Samples per prompt (a row of the grid); the same seeds every time, so rows compare across steps."""
    steps: int = 25
    """DDIM steps per sample."""
    guidance_scale: float = 7.5
    """Classifier-free guidance of the samples."""


@dataclass
class OutputConfig:
    """What is written while training."""

    checkpoint_every: int = 100
    """Write checkpoint.pt every this many steps (0 = only at the end and on Ctrl-C)."""


@dataclass
class TrainLoraConfig:
    """Everything `lucidkit train-lora` does, as one config (presets/train-lora/*.yaml)."""

    images: str = ""
    """Folder of subject photos (jpg/png/webp; optional name.txt caption beside each)."""
    seed: int = 0
    """Seed of every random choice in the run."""
    data: DataConfig = field(default_factory=DataConfig)
    prior: TrainPriorConfig = field(default_factory=TrainPriorConfig)
    lora: AdapterConfig = field(default_factory=AdapterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prior_preservation: PriorPreservationConfig = field(default_factory=PriorPreservationConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


def resolve_config(preset: str | None, overrides: dict, command: str = "train-lora") -> TrainLoraConfig:
    """Preset + overrides → TrainLoraConfig (without a preset: 'toy' for the toy prior, else 'default')."""
    return config_lib.resolve_preset(TrainLoraConfig, command, preset, overrides)


def instance_prompt(cfg: DataConfig) -> str:
    """The prompt that names the subject: `prompt` as given, else the template with token and class word."""
    if cfg.prompt.strip():
        return cfg.prompt.strip()
    if not cfg.token.strip():
        raise UserError("say how to name the subject: --token sks (with --class-word dog) or the whole --prompt")
    return " ".join(cfg.instance_template.format(token=cfg.token.strip(), class_word=cfg.class_word.strip()).split())


def class_prompt(cfg: TrainLoraConfig) -> str:
    """The prompt of the prior-preservation class images ("a dog")."""
    pp = cfg.prior_preservation
    if pp.class_prompt.strip():
        return pp.class_prompt.strip()
    if not cfg.data.class_word.strip():
        raise UserError("prior preservation needs the subject's class: pass --class-word (e.g. dog) or "
                        "--class-prompt, or turn it off with --no-prior-preservation")
    return " ".join(pp.class_template.format(class_word=cfg.data.class_word.strip()).split())


def check_config(cfg: TrainLoraConfig) -> None:
    """Values no run can use; raise UserError naming the field."""
    if cfg.data.crop not in ("center", "pad"):
        raise UserError(f"data.crop must be 'center' or 'pad', got {cfg.data.crop!r}")
    positive = {"train.steps": cfg.train.steps, "train.batch_size": cfg.train.batch_size, "lora.rank": cfg.lora.rank}
    for key, value in positive.items():
        if value < 1:
            raise UserError(f"{key} must be at least 1, got {value}")
    if cfg.train.learning_rate <= 0:
        raise UserError(f"train.learning_rate must be positive, got {cfg.train.learning_rate}")
    if cfg.prior_preservation.enabled and cfg.prior_preservation.num_images < 1:
        raise UserError("prior_preservation.num_images must be at least 1 (or turn prior preservation off)")
