"""Tiny random Stable-Diffusion pipelines for tests (no download, no cache, well under a second).

`tiny_pipeline_components()` builds the five parts of a Stable Diffusion pipeline in-process with random
weights and SD's real noise schedule; `save_tiny_pipeline(folder)` writes them as a standard diffusers
`StableDiffusionPipeline` folder that `StableDiffusionPipeline.from_pretrained(folder)` and
`DiffusionPrior.load(folder)` load offline.

The models produce noise, not pictures: use them to test shapes, plumbing, gradients and file handling,
never quality (that is the toy prior's job, see docs/toyworld.md).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import torch

from lucidkit.prior.load import quiet_libraries
from lucidkit.prior.random_weights import tiny_tokenizer


def tiny_pipeline_components(seed: int = 0, image_size: int = 32, vae_scale_factor: int = 2) -> dict:
    """Build a tiny random Stable Diffusion pipeline's parts.

    Args:
        seed: seeds the random weights (same seed -> same weights).
        image_size: image side in pixels (default 32); must be a multiple of 2 * vae_scale_factor.
        vae_scale_factor: the VAE's downsampling, 2 (two VAE blocks) or 4 (three blocks); any power of two works.

    Returns a dict with `unet`, `vae`, `text_encoder`, `tokenizer`, `scheduler`, `safety_checker=None`,
    `feature_extractor=None`, `image_encoder=None` — the keyword arguments of `StableDiffusionPipeline`.
    The UNet's `sample_size` is `image_size // vae_scale_factor` (latent side), as in SD.
    The global torch RNG is left as it was.
    """
    n_vae_blocks = int(math.log2(vae_scale_factor)) + 1
    if 2 ** (n_vae_blocks - 1) != vae_scale_factor:
        raise ValueError(f"vae_scale_factor must be a power of two, got {vae_scale_factor}")
    if image_size % (2 * vae_scale_factor) != 0:
        raise ValueError(f"image_size {image_size} must be a multiple of 2 * vae_scale_factor = {2 * vae_scale_factor}")
    latent_size = image_size // vae_scale_factor
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's global RNG
        parts = _build_tiny_models(seed, image_size, latent_size, n_vae_blocks)
    return {**parts, "safety_checker": None, "feature_extractor": None, "image_encoder": None}


def _build_tiny_models(seed: int, image_size: int, latent_size: int, n_vae_blocks: int) -> dict:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from lucidkit.arch import make_scheduler  # Stable Diffusion's training schedule

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    torch.manual_seed(seed + 1)
    vae_channels = (32, 64, 64, 64, 64)[:n_vae_blocks]
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n_vae_blocks,
        up_block_types=("UpDecoderBlock2D",) * n_vae_blocks,
        block_out_channels=vae_channels,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=image_size,
        scaling_factor=0.18215,
    )
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=tokenizer.model_max_length,
            hidden_act="quick_gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    # Stable Diffusion's training schedule, so recipe timesteps mean the same thing here.
    scheduler = make_scheduler()
    for model in (unet, vae, text_encoder):
        model.eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def save_tiny_pipeline(
    folder: str | os.PathLike, seed: int = 0, image_size: int = 32, vae_scale_factor: int = 2
) -> Path:
    """Write a tiny random pipeline (see `tiny_pipeline_components`) as a diffusers folder and return its path.

    The folder holds `model_index.json`, `unet/`, `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`
    (safetensors weights, no safety checker). It is written to a temporary sibling and renamed into place,
    so an existing non-empty `folder` is an error rather than being overwritten.
    """
    from diffusers import StableDiffusionPipeline

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} exists and is not empty")
    folder.parent.mkdir(parents=True, exist_ok=True)
    parts = tiny_pipeline_components(seed=seed, image_size=image_size, vae_scale_factor=vae_scale_factor)
    pipe = StableDiffusionPipeline(**parts, requires_safety_checker=False)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        with quiet_libraries():
            pipe.save_pretrained(tmp, safe_serialization=True)
        if folder.exists():
            folder.rmdir()  # empty (checked above)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


# ----------------------------------------------------------------------------------------------------------
# the same tiny pipeline as one original-layout ("LDM") checkpoint, to exercise single-file loading offline

_LDM_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_LDM_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_LDM_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename(state: dict, prefix_map: list[tuple[str, str, dict]], out_prefix: str) -> dict:
    """Rename diffusers keys by the first matching (diffusers prefix, ldm prefix, inner renames) rule."""
    out = {}
    for key, value in state.items():
        for old, new, inner in prefix_map:
            if key == old or key.startswith(old + "."):
                rest = key[len(old) + 1 :]
                for a, b in inner.items():
                    if rest.startswith(a + "."):
                        rest = b + rest[len(a) :]
                        break
                out[out_prefix + new + ("." + rest if rest else "")] = value
                break
        else:
            raise KeyError(f"no LDM name for {key}")
    return out


def _unet_to_ldm(unet) -> dict:
    cfg = unet.config
    n_layers = cfg.layers_per_block
    rules: list[tuple[str, str, dict]] = [
        ("time_embedding.linear_1", "time_embed.0", {}),
        ("time_embedding.linear_2", "time_embed.2", {}),
        ("conv_in", "input_blocks.0.0", {}),
        ("conv_norm_out", "out.0", {}),
        ("conv_out", "out.2", {}),
        ("mid_block.resnets.0", "middle_block.0", _LDM_RESNET),
        ("mid_block.attentions.0", "middle_block.1", {}),
        ("mid_block.resnets.1", "middle_block.2", _LDM_RESNET),
    ]
    k = 1
    for i, block in enumerate(unet.down_blocks):
        for j in range(n_layers):
            rules.append((f"down_blocks.{i}.resnets.{j}", f"input_blocks.{k}.0", _LDM_RESNET))
            if getattr(block, "attentions", None):
                rules.append((f"down_blocks.{i}.attentions.{j}", f"input_blocks.{k}.1", {}))
            k += 1
        if block.downsamplers:
            rules.append((f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{k}.0.op", {}))
            k += 1
    k = 0
    for i, block in enumerate(unet.up_blocks):
        has_attn = bool(getattr(block, "attentions", None))
        for j in range(n_layers + 1):
            rules.append((f"up_blocks.{i}.resnets.{j}", f"output_blocks.{k}.0", _LDM_RESNET))
            if has_attn:
                rules.append((f"up_blocks.{i}.attentions.{j}", f"output_blocks.{k}.1", {}))
            if j == n_layers and block.upsamplers:
                rules.append((f"up_blocks.{i}.upsamplers.0.conv", f"output_blocks.{k}.{2 if has_attn else 1}.conv", {}))
            k += 1
    return _rename(unet.state_dict(), rules, "model.diffusion_model.")


def _vae_to_ldm(vae) -> dict:
    n_blocks = len(vae.config.block_out_channels)
    rules: list[tuple[str, str, dict]] = []
    for part in ("encoder", "decoder"):
        rules += [
            (f"{part}.conv_norm_out", f"{part}.norm_out", {}),
            (f"{part}.mid_block.resnets.0", f"{part}.mid.block_1", _LDM_VAE_RESNET),
            (f"{part}.mid_block.resnets.1", f"{part}.mid.block_2", _LDM_VAE_RESNET),
            (f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1", _LDM_VAE_ATTN),
            (f"{part}.conv_in", f"{part}.conv_in", {}),
            (f"{part}.conv_out", f"{part}.conv_out", {}),
        ]
    for i in range(n_blocks):
        rules += [
            (f"encoder.down_blocks.{i}.resnets", f"encoder.down.{i}.block", {}),
            (f"encoder.down_blocks.{i}.downsamplers.0.conv", f"encoder.down.{i}.downsample.conv", {}),
            (f"decoder.up_blocks.{i}.resnets", f"decoder.up.{n_blocks - 1 - i}.block", {}),
            (f"decoder.up_blocks.{i}.upsamplers.0.conv", f"decoder.up.{n_blocks - 1 - i}.upsample.conv", {}),
        ]
    rules += [("quant_conv", "quant_conv", {}), ("post_quant_conv", "post_quant_conv", {})]
    out = _rename(vae.state_dict(), rules, "first_stage_model.")
    renamed = {}
    for key, value in out.items():
        key = key.replace(".conv_shortcut.", ".nin_shortcut.")
        if ".mid.attn_1." in key and key.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]  # LDM uses 1x1 convolutions for the VAE's attention projections
        renamed[key] = value
    return renamed


def _text_encoder_to_ldm(text_encoder, layout: str) -> dict:
    """CLIP text encoder weights under SD 1.x (OpenAI CLIP, HF names) or SD 2.x (OpenCLIP) checkpoint names."""
    state = {
        (k[len("text_model.") :] if k.startswith("text_model.") else k): v  # transformers >= 5.6 is flat
        for k, v in text_encoder.state_dict().items()
    }
    if layout == "sd1":
        return {"cond_stage_model.transformer.text_model." + k: v for k, v in state.items()}
    pre = "cond_stage_model.model."
    out = {
        pre + "token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
        pre + "positional_embedding": state.pop("embeddings.position_embedding.weight"),
        pre + "ln_final.weight": state.pop("final_layer_norm.weight"),
        pre + "ln_final.bias": state.pop("final_layer_norm.bias"),
    }
    width = out[pre + "ln_final.weight"].shape[0]
    out[pre + "text_projection"] = torch.eye(width)  # SD 2.x files carry one; the SD text encoder ignores it
    n_layers = text_encoder.config.num_hidden_layers
    # SD 2.x uses the penultimate layer: its files hold one block more than the diffusers model, which diffusers
    # skips; the extra block here repeats the last one
    for i, src in enumerate(list(range(n_layers)) + [n_layers - 1]):
        block, dst = f"encoder.layers.{src}.", f"{pre}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat([state[block + f"self_attn.{q}_proj.{kind}"] for q in "qkv"])
            out[dst + f"attn.out_proj.{kind}"] = state[block + f"self_attn.out_proj.{kind}"]
            out[dst + f"ln_1.{kind}"] = state[block + f"layer_norm1.{kind}"]
            out[dst + f"ln_2.{kind}"] = state[block + f"layer_norm2.{kind}"]
            out[dst + f"mlp.c_fc.{kind}"] = state[block + f"mlp.fc1.{kind}"]
            out[dst + f"mlp.c_proj.{kind}"] = state[block + f"mlp.fc2.{kind}"]
    return out


def pipeline_to_ldm_state_dict(unet, vae, text_encoder, layout: str = "sd1") -> dict:
    """Diffusers SD models -> one state dict in the original single-file layout ("sd1" or "sd2" text encoder).

    The inverse of diffusers' single-file conversion, for tests and benchmarks of single-file loading.
    """
    if layout not in ("sd1", "sd2"):
        raise ValueError(f"layout must be 'sd1' or 'sd2', got {layout!r}")
    return {**_unet_to_ldm(unet), **_vae_to_ldm(vae), **_text_encoder_to_ldm(text_encoder, layout)}


def save_tiny_single_file(
    path: str | os.PathLike, seed: int = 0, image_size: int = 32, vae_scale_factor: int = 2, layout: str = "sd1"
) -> Path:
    """Write the tiny pipeline of `tiny_pipeline_components(seed, ...)` as ONE `.safetensors` file in the original
    Stable Diffusion layout (model.diffusion_model.*, first_stage_model.*, and cond_stage_model.transformer.* for
    layout "sd1" or the OpenCLIP names cond_stage_model.model.* for "sd2").

    Weights equal those of `save_tiny_pipeline(folder, seed, ...)` with the same arguments, so a test can load
    both and compare. Loading it needs that folder's configs and tokenizer (`DiffusionPrior.load(path,
    config=folder)`), because the tiny shapes are not a shipped architecture.
    """
    from safetensors.torch import save_file

    parts = tiny_pipeline_components(seed=seed, image_size=image_size, vae_scale_factor=vae_scale_factor)
    state = pipeline_to_ldm_state_dict(parts["unet"], parts["vae"], parts["text_encoder"], layout)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(tmp))
    os.replace(tmp, path)
    return path


def save_tiny_lora(folder: str | os.PathLike, seed: int = 0, rank: int = 4, text_encoder: bool = True) -> Path:
    """Write a random LoRA for the tiny pipeline (any seed/size: shapes do not depend on them) in diffusers format
    and return `folder/pytorch_lora_weights.safetensors`. It adapts the UNet attention projections and, with
    `text_encoder`, the text encoder's. LoRA "B" matrices are random (not zero as after peft's init) so that
    applying it visibly changes outputs. Same seed -> same file; the global torch RNG is left as it was.
    """
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from lucidkit.lora.adapters import add_lora_layers

    parts = tiny_pipeline_components(seed=seed)
    models = {"unet": (parts["unet"], ["to_q", "to_k", "to_v", "to_out.0"])}
    if text_encoder:
        models["text_encoder"] = (parts["text_encoder"], ["q_proj", "k_proj", "v_proj", "out_proj"])
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed + 3)
        for model, targets in models.values():
            add_lora_layers(model, LoraConfig(r=rank, lora_alpha=rank, target_modules=targets))
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(0.1 * torch.randn(param.shape))
    layers = {name: get_peft_model_state_dict(model) for name, (model, _) in models.items()}
    folder = Path(folder)
    with quiet_libraries():
        StableDiffusionPipeline.save_lora_weights(
            save_directory=str(folder),
            unet_lora_layers=layers["unet"],
            text_encoder_lora_layers=layers.get("text_encoder"),
            safe_serialization=True,
        )
    return folder / "pytorch_lora_weights.safetensors"
