"""LoRA files on the prior: checking a file against the prior's layers from its header alone, and applying it
(diffusers' loader, every common format) to the UNet and text encoder."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from lucidkit.errors import UserError
from lucidkit.prior.files import _PICKLE_SUFFIXES, ModelLoadError, check_safetensors_file
from lucidkit.prior.load import move_model, quiet_libraries


class LoraFitError(UserError):
    """A LoRA (file or settings) that does not fit the chosen prior."""


def _layer_shape(module) -> tuple[int, int] | None:
    """(in, out) features of a Linear or 1x1/kxk Conv2d layer (unwrapping a peft-wrapped one), else None."""
    module = getattr(module, "base_layer", module)
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, torch.nn.Conv2d):
        return module.in_channels, module.out_channels
    return None


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


class LoraSupport:
    """LoRA loading for `DiffusionPrior` (a mixin)."""

    def load_lora(self, path: str | os.PathLike, scale: float = 1.0, adapter_name: str | None = None) -> str:
        """Apply a LoRA (diffusers/peft or kohya format, as written by `train-lora`) to the UNet and text encoder.

        `path` is a `.safetensors` file or a folder holding `pytorch_lora_weights.safetensors`. Several LoRAs
        can be stacked; `scale` weighs this one. Text embeddings cached before are dropped. Returns the adapter name.
        """
        path = Path(path).expanduser()
        if path.suffix.lower() in _PICKLE_SUFFIXES:
            raise ModelLoadError(f"LoRA {path} is a pickle ({path.suffix}); pass a .safetensors file")
        file = path / "pytorch_lora_weights.safetensors" if path.is_dir() else path
        if not file.is_file():
            raise ModelLoadError(
                f"LoRA {path} not found "
                "(expected a .safetensors file or a folder with pytorch_lora_weights.safetensors)"
            )
        check_safetensors_file(file)
        check_lora_fits(self, file, str(path))  # a LoRA made for another model: one clear line, not a shape dump
        name = adapter_name or f"lora{len(self.source['loras'])}"
        # a pipeline object around our own models gives us diffusers' LoRA loader (all common formats)
        pipe = self.as_pipeline()
        with quiet_libraries():
            try:
                pipe.load_lora_weights(str(file.parent), weight_name=file.name, adapter_name=name)
            except Exception as err:  # noqa: BLE001
                raise ModelLoadError(
                    f"cannot apply LoRA {path} to {self.source.get('spec')} ({type(err).__name__}: {err})"
                ) from err
            self.source["loras"].append({"path": str(path), "scale": float(scale), "adapter": name})
            pipe.set_adapters([a["adapter"] for a in self.source["loras"]], [a["scale"] for a in self.source["loras"]])
        for model in (self.unet, self.text_encoder):
            move_model(model, self.device, self.dtype).eval().requires_grad_(False)
        self._emb_cache.clear()
        return name
