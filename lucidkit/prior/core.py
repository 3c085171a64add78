"""DiffusionPrior: a Stable-Diffusion-format text-to-image prior, loaded once and queried by the guidance.

Where weights come from (`DiffusionPrior.load(spec)`):
- "toy": the small prior lucidkit trains on its procedural world, shipped in samples/toy-prior;
- a short name from lucidkit.models ("sd21-base", "sd15"): a hub repository pinned to a revision;
- a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/);
- one `.safetensors` file in the original SD 1.x/2.x layout, converted by diffusers with the configs shipped
  in lucidkit/arch (no download); pickled `.ckpt`/`.pt` files are refused;
- a hub id "org/name" (optionally "org/name@revision"): from the local hub cache, or downloaded when online.
Every failure a user can cause raises a `ModelLoadError` (a `UserError`) naming the input and what was expected.

What the prior computes (symbols as in docs/ism.md):
- `embed(prompts)`            e = text_encoder(tokens)            [n, L, D]
- `encode_images(img)`        z0 = vae.encode(2·img − 1).sample · scaling_factor   (differentiable)
- `decode_latents(z0)`        img = (vae.decode(z0 / scaling_factor) + 1) / 2
- `predict_noise(x, t, e)`    ε(x, t, e), always ε even for v-prediction models   (no grad)

Models live on `device` in `dtype` (float32 on CPU; bfloat16/float16 allowed on CUDA), in eval mode with
requires_grad False; the VAE encoder still passes gradients to its input image. Outputs are float32.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

from lucidkit.devices import check_device, dtype_name, resolve_dtype, to_device
from lucidkit.prior.controlnet import _load_controlnet
from lucidkit.prior.fast import FastPath
from lucidkit.prior.files import ModelLoadError
from lucidkit.prior.load import _check_tokenizer, _load_parts, move_model, quiet_libraries
from lucidkit.prior.lora_files import LoraSupport


class DiffusionPrior(FastPath, LoraSupport):
    """A Stable Diffusion prior: UNet, VAE, CLIP text encoder, tokenizer and noise schedule on one device.

    Attributes (read-only by convention):
        unet, vae, text_encoder, tokenizer: the models (eval mode, requires_grad False), in `dtype` on `device`.
        scheduler: a DDIMScheduler carrying the model's training noise schedule (its config is the model's).
        alphas_cumprod: ᾱ_t for t = 0..T-1, [T] float32 on `device` (T = num_train_timesteps, 1000 for SD).
        prediction_type: "epsilon" or "v_prediction" (predict_noise returns ε either way).
        vae_scale_factor: pixels per latent cell (8 for SD, 4 for the toy prior).
        latent_size, latent_channels: the UNet's native latent side and channels (64 and 4 for SD 2.1-base).
        resolution: native image side in pixels = latent_size * vae_scale_factor (512 for SD 2.1-base).
        scaling_factor: VAE latent scale (0.18215 for SD).
        controlnet: an attached ControlNetModel or None; predict_noise uses it when given `cond`.
        source: what was loaded, for the run manifest (dict of JSON-able values).
    """

    def __init__(
        self,
        unet,
        vae,
        text_encoder,
        tokenizer,
        scheduler,
        *,
        device="cpu",
        dtype=torch.float32,
        source: dict | None = None,
        check_tokenizer: bool = True,
    ):
        from diffusers import DDIMScheduler

        self.device = check_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.unet, self.vae, self.text_encoder = unet, vae, text_encoder
        for model in (self.unet, self.vae, self.text_encoder):
            move_model(model, self.device, self.dtype)
            model.eval()
            model.requires_grad_(False)
        self.tokenizer = tokenizer
        self.scheduler = (
            scheduler if isinstance(scheduler, DDIMScheduler) else DDIMScheduler.from_config(scheduler.config)
        )
        self.controlnet = None
        self._compile_mode = "off"  # how the UNet and VAE encoder run (FastPath.enable_fast_path)
        self._vae_layout = torch.contiguous_format  # the encoder's input layout (channels-last once compiled)
        self.max_unet_batch = 0  # 0 = no limit
        self.source: dict[str, Any] = {
            "dtype": dtype_name(self.dtype),
            "device": str(self.device),
            "loras": [],
            "controlnet": None,
            **(source or {}),
        }
        self._check_consistency(check_tokenizer)
        self._emb_cache: dict[str, torch.Tensor] = {}

    def _check_consistency(self, check_tokenizer: bool) -> None:
        what = self.source.get("spec", "the model")
        if check_tokenizer:
            _check_tokenizer(self.tokenizer, self.text_encoder, what)
        unet_cfg, vae_cfg = self.unet.config, self.vae.config
        if unet_cfg.cross_attention_dim != self.text_encoder.config.hidden_size:
            raise ModelLoadError(
                f"{what}: the UNet attends to {unet_cfg.cross_attention_dim}-wide text embeddings but the text encoder "
                f"produces {self.text_encoder.config.hidden_size}; the parts come from different models"
            )
        if unet_cfg.in_channels != vae_cfg.latent_channels:
            raise ModelLoadError(
                f"{what}: the UNet takes {unet_cfg.in_channels} input channels but the VAE makes "
                f"{vae_cfg.latent_channels}"
                " latent channels (inpainting and depth UNets are not supported)"
            )
        self.prediction_type = self.scheduler.config.prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ModelLoadError(
                f"{what}: unsupported prediction type {self.prediction_type!r} (expected epsilon or v_prediction)"
            )

    # --- derived constants -------------------------------------------------------------------------------

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t, [T] float32 on device."""
        if getattr(self, "_alphas_cumprod", None) is None or self._alphas_cumprod.device != self.device:
            self._alphas_cumprod = self.scheduler.alphas_cumprod.to(self.device, torch.float32)  # [T]
        return self._alphas_cumprod

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_size(self) -> int:
        return int(self.unet.config.sample_size)

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def resolution(self) -> int:
        return self.latent_size * self.vae_scale_factor

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    # --- loading -------------------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        spec: str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = torch.float32,
        *,
        config: str | os.PathLike | None = None,
        tokenizer: str | os.PathLike | None = None,
    ) -> "DiffusionPrior":
        """Load a prior from "toy", a known short name, a diffusers folder, a `.safetensors` file or a hub id.

        Args:
            spec: what to load (see the module docstring); a hub id may carry "@revision".
            device: "cpu" or "cuda[:N]".
            dtype: torch dtype or precision name ("auto", "fp32", "bf16", "fp16"); half precision needs CUDA.
            config: single files only: a diffusers folder whose configs (and tokenizer) describe the checkpoint,
                instead of the shipped SD 1.x/2.x architectures.
            tokenizer: single files only: a folder with the CLIP tokenizer (a diffusers folder or its tokenizer/).
        Raises ModelLoadError (a UserError) with a message naming `spec` for anything the user can fix.
        """
        device = check_device(device)
        dtype = resolve_dtype(dtype, device)
        with quiet_libraries():
            parts, source = _load_parts(str(spec), dtype, config, tokenizer)
        return cls(**parts, device=device, dtype=dtype, source=source)

    # --- text -----------------------------------------------------------------------------------------------

    @property
    def max_tokens(self) -> int:
        """Tokens per prompt L (77 for SD): the tokenizer's limit, capped by the text encoder's positions."""
        return min(int(self.tokenizer.model_max_length), int(self.text_encoder.config.max_position_embeddings))

    @torch.no_grad()
    def embed(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings of `prompts`, [n, L, D] float32 on device (L = max_tokens, D = text width).

        Each distinct prompt is encoded once and cached for the life of the prior. Longer prompts are cut to
        L tokens with a warning (the text encoder cannot see further).
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        missing = [p for p in dict.fromkeys(prompts) if p not in self._emb_cache]
        if missing:
            tokens = self.tokenizer(
                missing,
                padding="max_length",
                max_length=self.max_tokens,
                truncation=True,
                return_overflowing_tokens=False,
                return_tensors="pt",
            )
            for p in missing:
                if len(self.tokenizer(p).input_ids) > self.max_tokens:
                    warnings.warn(f"prompt is longer than {self.max_tokens} tokens and was cut: {p!r}", stacklevel=2)
            text_device = self.text_encoder.device  # `device`, or the CPU after offload_text_encoder()
            ids = tokens.input_ids.to(text_device)  # [m, L]
            mask = None
            if getattr(self.text_encoder.config, "use_attention_mask", False):
                mask = tokens.attention_mask.to(text_device)
            hidden = self.text_encoder(ids, attention_mask=mask)[0]  # [m, L, D]
            for p, e in zip(missing, hidden.to(self.device, torch.float32), strict=True):
                self._emb_cache[p] = e
        return torch.stack([self._emb_cache[p] for p in prompts])  # [n, L, D]

    # --- images <-> latents ---------------------------------------------------------------------------------

    def _check_images(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W] in [0, 1], got shape {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % self.vae_scale_factor or w % self.vae_scale_factor:
            raise ValueError(f"image size {h}x{w} must be a multiple of the VAE scale factor {self.vae_scale_factor}")

    def latent_posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation [B, C, H/f, W/f] float32 of the VAE's posterior for images [B, 3, H, W] in
        [0, 1], in the UNet's latent space (shifted and scaled): a latent sample is mean + std · ε. Gradients follow
        the caller's context."""
        self._check_images(images)
        x = (2.0 * images - 1.0).to(self.device, self.dtype)  # [B, 3, H, W] in [-1, 1]
        # one memory layout whatever the caller's strides (a permuted render, an expanded disparity map), so a
        # compiled encoder sees a single input layout and is not recompiled (see enable_fast_path)
        dist = self.vae.encode(x.contiguous(memory_format=self._vae_layout)).latent_dist
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return (dist.mean.float() - shift) * self.scaling_factor, dist.std.float() * self.scaling_factor

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents z0 of images [B, 3, H, W] in [0, 1] -> [B, C, H/f, W/f] float32 (f = vae_scale_factor).

        z0 = vae.encode(2·img − 1).latent_dist.sample(generator) · scaling_factor. Differentiable w.r.t. `images`
        (gradients flow through the frozen encoder). Any H, W that are multiples of f are accepted; resizing to
        `resolution` is the caller's choice.
        """
        self._check_images(images)
        mean, std = self.latent_posterior(images)  # [B, C, h, w]
        # the sampling noise (the numbers diffusers' dist.sample(generator) draws) is drawn once the encoder is
        # queued, so the GPU runs it meanwhile, and copied without a host sync (a blocking copy would make the host
        # wait for the whole encoder forward pass)
        noise = torch.randn(mean.shape, generator=generator, dtype=self.dtype,
                            device=generator.device if generator is not None else self.device)
        return mean + std * to_device(noise, self.device, torch.float32)  # [B, C, h, w]

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1] float32 from latents z [B, C, h, w]. Gradients follow the caller's context."""
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        x = (z / self.scaling_factor + shift).to(self.device, self.dtype)
        img = self.vae.decode(x).sample  # [B, 3, H, W] in ~[-1, 1]
        return ((img.float() + 1.0) / 2.0).clamp(0.0, 1.0)

    # --- the UNet -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def predict_noise(
        self, x: torch.Tensor, t: torch.Tensor | int, emb: torch.Tensor, cond: dict | None = None
    ) -> torch.Tensor:
        """ε(x, t, e): the UNet's noise prediction, [B, C, h, w] float32.

        Args:
            x: noisy latents [B, C, h, w] (any dtype; cast to the prior's dtype).
            t: timesteps [B] long (or a scalar for the whole batch), values in [0, num_train_timesteps).
            emb: text embeddings [B, L, D] (from `embed`, possibly interpolated).
            cond: ControlNet conditioning, requires an attached controlnet:
                {"image": [B or 1, 3, H, W] in [0, 1] at pixel resolution h·f, "scale": float (default 1.0)}.
        For v-prediction models the output is converted to ε = sqrt(ᾱ_t)·v + sqrt(1−ᾱ_t)·x.
        """
        batch = x.shape[0]
        t = torch.as_tensor(t, device=self.device)
        t = (t.expand(batch) if t.ndim == 0 else t).long()  # [B]
        if self.max_unet_batch and batch > self.max_unet_batch:  # low-memory mode: CFG branches one after another
            n = self.max_unet_batch
            chunk = lambda v, i: None if v is None else (v[i:i + n] if v.shape[0] == batch else v)
            return torch.cat([
                self.predict_noise(x[i:i + n], t[i:i + n], emb[i:i + n],
                                   None if cond is None else {k: chunk(v, i) if torch.is_tensor(v) else v
                                                              for k, v in cond.items()})
                for i in range(0, batch, n)
            ])
        if emb.shape[0] != batch or t.shape[0] != batch:
            raise ValueError(f"batch mismatch: x has {batch}, t has {t.shape[0]}, emb has {emb.shape[0]}")
        x_in = x.to(self.device, self.dtype)  # [B, C, h, w]
        e_in = emb.to(self.device, self.dtype)  # [B, L, D]
        extra: dict[str, Any] = {}
        if cond is not None:
            extra = self._controlnet_residuals(x_in, t, e_in, cond)
        if self.compiled:
            torch.compiler.cudagraph_mark_step_begin()  # outputs of earlier graph replays may be reused
        out = self.unet(x_in, t, encoder_hidden_states=e_in, return_dict=False, **extra)[0]
        out = out.float() if out.dtype != torch.float32 or not self.compiled else out.clone()  # [B, C, h, w]
        if self.prediction_type == "v_prediction":
            a = self.alphas_cumprod[t].view(-1, 1, 1, 1)  # [B, 1, 1, 1]
            out = a.sqrt() * out + (1 - a).sqrt() * x.to(self.device, torch.float32)
        return out

    # --- ControlNet -----------------------------------------------------------------------------------------

    def attach_controlnet(self, controlnet: Any, *, source: dict | str | None = None) -> None:
        """Attach a ControlNetModel (already loaded), or load one: "controlnet-openpose", a folder with
        config.json + weights, a hub id, or "random" (SD 1.5 OpenPose shapes, random weights, benchmarks only)."""
        if isinstance(controlnet, (str, os.PathLike)):
            with quiet_libraries():
                controlnet, source = _load_controlnet(str(controlnet), self.device)
        cfg, unet = controlnet.config, self.unet.config
        label = source.get("spec") if isinstance(source, dict) else source
        if cfg.cross_attention_dim != unet.cross_attention_dim:
            raise ModelLoadError(
                f"ControlNet {label or ''} attends to {cfg.cross_attention_dim}-wide text but the "
                f"prior's UNet uses {unet.cross_attention_dim}: they belong to different model families"
            )
        factor = 2 ** (len(cfg.conditioning_embedding_out_channels) - 1)  # its condition image -> latent downscale
        if tuple(cfg.block_out_channels) != tuple(unet.block_out_channels) or factor != self.vae_scale_factor:
            raise ModelLoadError(
                f"ControlNet {label or ''} does not fit the prior {self.source.get('spec')!r}: its blocks are "
                f"{list(cfg.block_out_channels)} wide and it shrinks condition images {factor}x, where the prior's "
                f"UNet is {list(unet.block_out_channels)} and its latents are {self.vae_scale_factor}x smaller than images"
            )
        move_model(controlnet, self.device, self.dtype).eval().requires_grad_(False)
        if self.source.get("fast_path"):  # attached after enable_fast_path: the same layout as the UNet's
            controlnet.to(memory_format=torch.channels_last)
        self.controlnet = self.graphed_controlnet(controlnet)  # CUDA graphs in the "graphs"/"regional" modes
        self.source["controlnet"] = source if isinstance(source, dict) else {"spec": source}

    def _controlnet_residuals(self, x: torch.Tensor, t: torch.Tensor, emb: torch.Tensor, cond: dict) -> dict:
        if self.controlnet is None:
            raise ValueError("predict_noise got `cond` but no ControlNet is attached (use attach_controlnet)")
        image = cond["image"].to(self.device, self.dtype)  # [B or 1, 3, H, W] in [0, 1]
        if image.shape[0] != x.shape[0]:
            if x.shape[0] % image.shape[0]:
                raise ValueError(f"cond image batch {image.shape[0]} does not divide latent batch {x.shape[0]}")
            image = image.repeat(x.shape[0] // image.shape[0], 1, 1, 1)  # [B, 3, H, W]
        down, mid = self.controlnet(
            x,
            t,
            encoder_hidden_states=emb,
            controlnet_cond=image,
            conditioning_scale=float(cond.get("scale", 1.0)),
            return_dict=False,
        )
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}

    def as_pipeline(self):
        """A `StableDiffusionPipeline` around this prior's own models (shared, not copied; no safety checker):
        for diffusers' LoRA loader and for sampling images from the prior."""
        with quiet_libraries():  # the pipeline module's imports warn about image processors lucidkit never uses
            from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            unet=self.unet,
            scheduler=self.scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )

    # --- manifest ---------------------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What was loaded and its shapes, for manifest.json."""
        return {
            **self.source,
            "resolution": self.resolution,
            "latent_size": self.latent_size,
            "latent_channels": self.latent_channels,
            "vae_scale_factor": self.vae_scale_factor,
            "prediction_type": self.prediction_type,
            "num_train_timesteps": self.num_train_timesteps,
        }

    def __repr__(self) -> str:
        return (
            f"DiffusionPrior({self.source.get('spec')!r}, {self.resolution}px, latents {self.latent_channels}x"
            f"{self.latent_size}², {dtype_name(self.dtype)} on {self.device})"
        )
