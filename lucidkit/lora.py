"""DreamBooth-style LoRA personalisation of the prior: the engine behind `lucidkit train-lora`.

A handful of photos of one subject and a rare token ("sks") → a LoRA (peft, attached through diffusers) on the
prior's UNet, and optionally on its text encoder, such that "a sks dog" draws *that* dog. The result is one
`pytorch_lora_weights.safetensors` in diffusers' format, which `StableDiffusionPipeline.load_lora_weights`,
`lucidkit generate --lora` and other diffusers-based tools read.

    photos/ → SubjectImages (EXIF orientation, centre-crop or pad, checks) → instance prompts
    → LoRA matrices on the frozen prior → training loop → pytorch_lora_weights.safetensors, config.yaml, manifest.json

Symbols (as in ISM.md): z0 = VAE latents of a photo; ε ~ N(0, I); t ~ U{0, …, T−1};
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

import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lucidkit import config as config_lib
from lucidkit.errors import UserError
from lucidkit.images import IMAGE_SUFFIXES
from lucidkit.optimize import CHECKPOINT_NAME, read_checkpoint

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # the attention projections of every transformer block
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


class BadImageError(UserError):
    """A subject photo that cannot be used (unreadable, corrupt, too small)."""


class LoraFitError(UserError):
    """A LoRA (file or settings) that does not fit the chosen prior."""


# ----------------------------------------------------------------------------------------------------------
# configuration


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
class PriorConfig:
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
    prior: PriorConfig = field(default_factory=PriorConfig)
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


# ----------------------------------------------------------------------------------------------------------
# subject photos


@dataclass
class SubjectImages:
    """The photos a LoRA learns from, ready for the VAE."""

    images: torch.Tensor  # [N, 3, R, R] float in [0, 1]
    prompts: list[str]  # [N] the instance prompt, or the photo's own caption (name.txt)
    files: list[str]  # [N] file names
    skipped: list[str]  # one message per photo that was skipped (data.skip_bad_images)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def find_images(folder: str | os.PathLike) -> list[Path]:
    """The image files (jpg/png/webp, not hidden) directly in `folder`, sorted by name."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise UserError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass a folder of subject photos (jpg/png/webp)")
    files = _image_files(folder)
    if not files:
        raise UserError(f"image folder {folder} holds no images (expected .jpg, .jpeg, .png or .webp files)")
    return files


def read_image(path: Path):
    """Open a photo as an upright RGB PIL image (`lucidkit.images.open_image`); BadImageError names a bad file."""
    from lucidkit.images import ImageError, open_image

    try:
        return open_image(path)
    except ImageError as err:
        raise BadImageError(str(err)) from None


def fit_image(img, resolution: int, crop: str) -> torch.Tensor:
    """[3, R, R] float in [0, 1]: 'center' scales the short side to R and keeps the middle; 'pad' scales the long
    side to R and pads the rest with white."""
    import numpy as np
    from PIL import Image

    w, h = img.size
    scale = resolution / (min(w, h) if crop == "center" else max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = img.resize(size, Image.Resampling.LANCZOS)
    if crop == "center":
        left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        img = img.crop((left, top, left + resolution, top + resolution))
    else:
        canvas = Image.new("RGB", (resolution, resolution), (255, 255, 255))
        canvas.paste(img, ((resolution - size[0]) // 2, (resolution - size[1]) // 2))
        img = canvas
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)  # [3, R, R]


def read_subject(folder: str | os.PathLike, skip_bad: bool) -> tuple[list[tuple[Path, object]], list[str]]:
    """Open every photo of `folder` (before any model loads, so bad files fail fast).

    Returns ([(path, RGB image)], skipped messages). A bad photo raises BadImageError, or with `skip_bad` is
    skipped and named; a folder left without usable photos is an error either way.
    """
    opened, skipped = [], []
    for path in find_images(folder):
        try:
            opened.append((path, read_image(path)))
        except BadImageError as err:
            if not skip_bad:
                raise BadImageError(f"{err}; remove it or pass --skip-bad-images") from None
            skipped.append(str(err))
    if not opened:
        raise UserError(f"image folder {folder} has no usable images ({len(skipped)} skipped: {skipped[0]})")
    return opened, skipped


def prepare_subject(opened: list, skipped: list[str], data: DataConfig, resolution: int,
                    prompt: str) -> SubjectImages:
    """Check sizes, crop/pad to `resolution` and pair each photo with its prompt (its name.txt caption if any)."""
    min_size = data.min_size or resolution // 2
    images, prompts, files, skipped = [], [], [], list(skipped)
    for path, img in opened:
        if min(img.size) < min_size:
            message = (f"image {path} is {img.size[0]}x{img.size[1]} pixels, smaller than the {min_size} pixels "
                       f"a side needs for {resolution}-pixel training (data.min_size)")
            if not data.skip_bad_images:
                raise BadImageError(f"{message}; use a larger photo or pass --skip-bad-images")
            skipped.append(message)
            continue
        caption = path.with_suffix(".txt")
        text = caption.read_text(encoding="utf-8", errors="replace").strip() if caption.is_file() else ""
        images.append(fit_image(img, resolution, data.crop))
        prompts.append(" ".join(text.split()) or prompt)
        files.append(path.name)
    if not images:
        raise BadImageError(f"no usable images left ({len(skipped)} skipped: {skipped[0]})")
    return SubjectImages(torch.stack(images), prompts, files, skipped)


def load_subject(folder: str | os.PathLike, data: DataConfig, resolution: int, prompt: str) -> SubjectImages:
    """`read_subject` then `prepare_subject`: the photos of `folder` as [N, 3, R, R] with their prompts."""
    opened, skipped = read_subject(folder, data.skip_bad_images)
    return prepare_subject(opened, skipped, data, resolution, prompt)


# ----------------------------------------------------------------------------------------------------------
# LoRA on the prior


def _layer_shape(module) -> tuple[int, int] | None:
    """(in, out) features of a Linear or 1x1/kxk Conv2d layer (unwrapping a peft-wrapped one), else None."""
    module = getattr(module, "base_layer", module)
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, torch.nn.Conv2d):
        return module.in_channels, module.out_channels
    return None


def _matches(name: str, target: str) -> bool:
    """peft's rule: a target names a layer exactly or as a dotted suffix."""
    return name == target or name.endswith("." + target)


def _targeted_layers(model, targets: list[str], what: str, spec: str) -> dict[str, tuple[int, int]]:
    """{layer name: (in, out)} of the layers `targets` select; LoraFitError when a target selects nothing or a
    layer LoRA cannot adapt."""
    if not targets:
        raise LoraFitError(f"no {what} layers to adapt: the target list is empty")
    layers = {name: module for name, module in model.named_modules() if any(_matches(name, t) for t in targets)}
    for target in targets:
        if not any(_matches(name, target) for name in layers):
            leaves = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if _layer_shape(m)})
            raise LoraFitError(f"LoRA target {target!r} matches no layer of the {what} of {spec!r} (its linear and "
                               f"conv layers end in: {', '.join(leaves[:12])})")
    shapes = {}
    for name, module in layers.items():
        shape = _layer_shape(module)
        if shape is None:
            raise LoraFitError(f"LoRA target layer {name} of the {what} of {spec!r} is a {type(module).__name__}; "
                               "LoRA adapts linear and convolution layers only")
        shapes[name] = shape
    return shapes


def check_adapter_fits(prior, cfg: AdapterConfig) -> None:
    """Raise LoraFitError unless the targets select linear/conv layers of the prior and the rank fits their width."""
    spec = str(prior.source.get("spec"))
    parts = [(prior.unet, cfg.unet_targets, "UNet")]
    if cfg.train_text_encoder:
        parts.append((prior.text_encoder, cfg.text_encoder_targets, "text encoder"))
    for model, targets, what in parts:
        shapes = _targeted_layers(model, targets, what, spec)
        name, (n_in, n_out) = min(shapes.items(), key=lambda kv: min(kv[1]))
        if cfg.rank > min(n_in, n_out):
            raise LoraFitError(f"lora.rank {cfg.rank} exceeds the width {min(n_in, n_out)} of the {what} layer {name} "
                               f"of {spec!r}; choose a rank of at most {min(n_in, n_out)}")


def add_lora_layers(model: torch.nn.Module, config) -> None:
    """Wrap `model`'s target layers in peft LoRA layers, adapter "default" (`model.peft_config` is set).

    diffusers' and transformers' `add_adapter` both come down to peft's `inject_adapter_in_model`; we call it
    directly because transformers' wrapper refuses peft releases older than the one it names (transformers 5.24
    names a peft that is not released), although the injection itself works with them.
    """
    from peft import inject_adapter_in_model

    inject_adapter_in_model(config, model, adapter_name="default")


def attach_lora(prior, cfg: AdapterConfig) -> list[torch.nn.Parameter]:
    """Add fresh LoRA matrices (peft) to the prior's UNet and, if asked, its text encoder; return the trainable
    parameters (float32; the prior's own weights stay frozen). The "A" matrices start Gaussian (from the global
    torch RNG), the "B" matrices at zero, so training starts at the prior.
    """
    from peft import LoraConfig

    check_adapter_fits(prior, cfg)
    parts = [(prior.unet, cfg.unet_targets)]
    if cfg.train_text_encoder:
        parts.append((prior.text_encoder, cfg.text_encoder_targets))
    params = []
    for model, targets in parts:
        add_lora_layers(model, LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha or cfg.rank,
                                          init_lora_weights="gaussian", target_modules=list(targets)))
        trainable = [p for p in model.parameters() if p.requires_grad]
        for p in trainable:
            p.data = p.data.float()  # fp32 master weights even when the frozen prior runs in bf16/fp16
        params += trainable
    return params


def lora_layers(prior, with_text_encoder: bool) -> tuple[dict, dict | None]:
    """The attached LoRA matrices in diffusers' naming (`...to_q.lora.down.weight`), UNet and text encoder."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    unet = convert_state_dict_to_diffusers(get_peft_model_state_dict(prior.unet))
    text = convert_state_dict_to_diffusers(get_peft_model_state_dict(prior.text_encoder)) if with_text_encoder else None
    return unet, text


def save_lora(prior, folder: Path, with_text_encoder: bool) -> Path:
    """Write `folder/pytorch_lora_weights.safetensors` in diffusers' format (the LoRA configs in its metadata),
    atomically: written into a temporary folder beside it, then renamed over the target."""
    from diffusers import StableDiffusionPipeline

    from lucidkit.prior import _quiet_libraries

    unet_layers, text_layers = lora_layers(prior, with_text_encoder)
    metadata = {"unet_lora_adapter_metadata": prior.unet.peft_config["default"].to_dict()}
    if with_text_encoder:
        metadata["text_encoder_lora_adapter_metadata"] = prior.text_encoder.peft_config["default"].to_dict()
    tmp = Path(tempfile.mkdtemp(prefix=".lora-", dir=folder))
    try:
        with _quiet_libraries():
            StableDiffusionPipeline.save_lora_weights(
                save_directory=str(tmp), unet_lora_layers=unet_layers, text_encoder_lora_layers=text_layers,
                weight_name=WEIGHTS_NAME, safe_serialization=True, **metadata)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp / WEIGHTS_NAME, 0o666 & ~umask)  # safetensors writes 0600; a LoRA is meant to be shared
        os.replace(tmp / WEIGHTS_NAME, folder / WEIGHTS_NAME)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / WEIGHTS_NAME


# keys of diffusers/peft-format LoRA files: "<part>.<layer>.<matrix>[.<adapter>].weight"
_LORA_KEY = re.compile(r"^(unet|text_encoder)\.(.+)\.(lora_A|lora_B|lora\.down|lora\.up|lora_linear_layer\.down"
                       r"|lora_linear_layer\.up)(\.[\w-]+)?\.weight$")


def check_lora_fits(prior, file: str | os.PathLike, label: str | None = None) -> None:
    """Check a diffusers/peft-format LoRA file against the prior's layers from its header alone (no weights read).

    Raises LoraFitError (one line) when it adapts layers the prior does not have or has with other widths, i.e. it
    was trained for another model. Keys of other formats (kohya, …) are left to diffusers' converters.
    """
    from safetensors import safe_open

    label = label or str(file)
    spec = prior.source.get("spec")
    with safe_open(str(file), "pt") as f:
        shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    modules = {"unet": dict(prior.unet.named_modules()), "text_encoder": dict(prior.text_encoder.named_modules())}
    problems, ranks, n_checked = [], {}, 0
    for key, shape in shapes.items():
        match = _LORA_KEY.match(key)
        if match is None:
            continue
        part, layer, matrix = match.group(1), match.group(2), match.group(3)
        names = modules[part]
        # transformers < 5 names text-encoder layers "text_model.encoder...", transformers 5 "encoder..."
        candidates = (layer, layer.removeprefix("text_model."), "text_model." + layer)
        module = next((names[c] for c in candidates if c in names), None)
        n_checked += 1
        where = f"{part}.{layer}"
        if module is None or _layer_shape(module) is None:
            problems.append(f"it adapts {where}, a layer the prior does not have")
            continue
        n_in, n_out = _layer_shape(module)
        down = matrix in ("lora_A", "lora.down", "lora_linear_layer.down")
        have, want = (shape[1], n_in) if down else (shape[0], n_out)
        if len(shape) < 2 or have != want:
            problems.append(f"its {where} maps {'from' if down else 'to'} {have} features where the prior's "
                            f"layer has {want}")
            continue
        ranks.setdefault(where, {})["down" if down else "up"] = shape[0] if down else shape[1]
    for where, r in ranks.items():
        if len(set(r.values())) > 1:
            problems.append(f"its {where} has LoRA matrices of different ranks {sorted(r.values())} (a damaged file)")
    if problems:
        raise LoraFitError(f"LoRA {label} does not fit the prior {spec!r}: {problems[0]} ({len(problems)} of "
                           f"{n_checked} LoRA matrices do not fit). It was made for another model; train one on "
                           f"this prior with `lucidkit train-lora ... --model {spec}`")


# ----------------------------------------------------------------------------------------------------------
# images from the prior (class images, validation grids)


def sample_images(prior, prompts: list[str], per_prompt: int, steps: int, guidance: float, seed: int) -> torch.Tensor:
    """[P * S, H, W, 3] float in [0, 1], prompt-major: DDIM samples of the prior as it is now (LoRA included),
    through diffusers' pipeline; sample i uses the seed `seed * 1e6 + i` (toyworld.quality's sampler)."""
    from diffusers import DDIMScheduler

    from lucidkit.prior import _quiet_libraries
    from lucidkit.toyworld.quality import sample_prompts

    pipe = prior.as_pipeline()
    pipe.scheduler = DDIMScheduler.from_config(prior.scheduler.config)  # its own step state
    pipe.set_progress_bar_config(disable=True)
    training = prior.unet.training
    prior.unet.eval(), prior.text_encoder.eval()
    try:
        with _quiet_libraries():
            return sample_prompts(pipe, prompts, per_prompt, steps, seed, guidance=guidance, chunk=16)
    finally:
        prior.unet.train(training)


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
    from lucidkit.export import atomic_path

    payload = {
        "step": state.step,
        "lora": {k: p.detach().cpu() for k, p in state.params.items()},
        "optimizer": state.optimizer.state_dict(),
        "generator": state.generator.get_state(),
        "loss_ema": state.loss_ema,
    }
    with atomic_path(folder / CHECKPOINT_NAME) as tmp:
        torch.save(payload, tmp)
    return folder / CHECKPOINT_NAME


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
    from lucidkit.generate import pick_device
    from lucidkit.prior import DiffusionPrior

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
        export.write_yaml(folder / "config.yaml", config_lib.to_dict(cfg))
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
    start_step = state.step
    scaler = torch.amp.GradScaler(prior.device.type, enabled=prior.dtype == torch.float16)
    validation_prompts = cfg.validation.prompts or [prompt]
    previews = folder / "previews"
    if cfg.validation.every > 0:
        previews.mkdir(exist_ok=True)
        if start_step == 0:  # what the prior draws before training, for comparison
            write_grid(prior, cfg.validation, validation_prompts, cfg.seed, previews / "step_000000.png")

    prior.unet.train()
    progress = runs.Progress(cfg.train.steps, start_step, "train-lora", quiet=quiet, log_every=50)
    train_timer = runs.Timer()
    try:
        while state.step < cfg.train.steps:
            loss = train_step(prior, state, batch, cfg, scaler)
            progress(state, {"loss": state.loss_ema if state.loss_ema is not None else loss})
            if cfg.validation.every > 0 and state.step % cfg.validation.every == 0:
                write_grid(prior, cfg.validation, validation_prompts, cfg.seed, previews / f"step_{state.step:06d}.png")
            if cfg.output.checkpoint_every > 0 and state.step % cfg.output.checkpoint_every == 0:
                save_checkpoint(state, folder)
    except KeyboardInterrupt:
        progress.close()
        save_checkpoint(state, folder)
        raise UserError(f"interrupted at step {state.step}/{cfg.train.steps}; checkpoint saved. "
                        f"Continue with: lucidkit train-lora --resume {folder}") from None
    progress.close()
    train_seconds = train_timer.elapsed()
    prior.unet.eval()
    save_checkpoint(state, folder)
    weights = save_lora(prior, folder, cfg.lora.train_text_encoder)
    write_grid(prior, cfg.validation, validation_prompts, cfg.seed, folder / "preview.png")

    n_params = sum(p.numel() for p in state.params.values())
    manifest = {
        "command": "train-lora",
        "instance_prompt": prompt,
        "token": cfg.data.token,
        "token_pieces": prior.tokenizer.tokenize(cfg.data.token) if cfg.data.token else [],
        "class_prompt": class_text,
        "images": subject.files,
        "captions": {f: p for f, p in zip(subject.files, subject.prompts) if p != prompt},
        "skipped": subject.skipped,
        "resolution": resolution,
        "seed": cfg.seed,
        "model": prior.source,
        "device": str(prior.device),
        "dtype": str(prior.dtype).replace("torch.", ""),
        "steps": state.step,
        "resumed_from_step": start_step or None,
        "final_loss": state.loss_ema,
        "lora": {"file": weights.name, "bytes": weights.stat().st_size, "parameters": n_params,
                 "rank": cfg.lora.rank, "alpha": cfg.lora.alpha or cfg.lora.rank,
                 "unet_targets": cfg.lora.unet_targets,
                 "text_encoder_targets": cfg.lora.text_encoder_targets if cfg.lora.train_text_encoder else []},
        "use_with": f'lucidkit generate "{prompt}" --model {cfg.prior.model} --lora {folder} --lora-scale 1.0',
        "timings": {"load_prior_s": load_seconds, "class_images_s": class_seconds, "train_s": train_seconds,
                    "s_per_step": train_seconds / max(state.step - start_step, 1), "total_s": timer.elapsed()},
        "outputs": [WEIGHTS_NAME, "preview.png", "config.yaml", CHECKPOINT_NAME],
        "versions": export.package_versions(),
    }
    export.write_json(folder / "manifest.json", manifest)
    return LoraResult(folder=folder, weights=weights, steps=state.step, images=len(subject.files),
                      seconds=timer.elapsed())
