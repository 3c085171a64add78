"""LoRA layers on the prior for training (peft, injected into the UNet and optionally the text encoder), and the
trained matrices saved in diffusers' format."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from lucidkit.lora.config import AdapterConfig
from lucidkit.prior.lora_files import LoraFitError, _layer_shape

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"


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

    from lucidkit.prior.load import quiet_libraries

    unet_layers, text_layers = lora_layers(prior, with_text_encoder)
    metadata = {"unet_lora_adapter_metadata": prior.unet.peft_config["default"].to_dict()}
    if with_text_encoder:
        metadata["text_encoder_lora_adapter_metadata"] = prior.text_encoder.peft_config["default"].to_dict()
    tmp = Path(tempfile.mkdtemp(prefix=".lora-", dir=folder))
    try:
        with quiet_libraries():
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
