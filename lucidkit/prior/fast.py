"""The prior's speed and memory options: channels-last layouts, torch.compile with CUDA graphs, the compiled
VAE encoder replayed as CUDA graphs, and a low-memory mode. Every option computes the same results up to float
rounding. Measurements behind each choice: docs/performance.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lucidkit.compile_cache import default_folder
from lucidkit.prior.graphed import GraphedModule
from lucidkit.prior.modes import COMPILING_MODES, GRAPHED_UNET_MODES, compile_mode

# Inductor stores a value that several kernels read once it reads > 4 inputs, has > 30 ops or has accumulated > 8
# reads; in the encoder's GroupNorm + SiLU backward those values are float32 copies of whole activations. With these
# thresholds each kernel recomputes them from the bf16 inputs instead, moving about half the bytes (the encoder's
# forward+backward 29.8 -> 26.1 ms on an H100, same error against float32; the UNet call a little faster too).
RECOMPUTE_OPTIONS = {"realize_reads_threshold": 16, "realize_opcount_threshold": 100, "realize_acc_reads_threshold": 16}


def use_persistent_compile_cache() -> Path | None:
    """Keep torch.compile's caches (compiled graphs, Triton kernels, autotuning) in ~/.cache/lucidkit/inductor
    instead of the temporary folder, so that they outlive a reboot: a later run compiles from them in about a third
    of the time. A TORCHINDUCTOR_CACHE_DIR set by the user wins; an unwritable home keeps torch's default."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is not None and os.path.abspath(current) != os.path.abspath(default_cache_dir()):
        return Path(current)
    folder = default_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    return folder


class FastPath:
    """Speed and memory options of `DiffusionPrior` (a mixin: it uses the prior's models and `source`)."""

    @property
    def compiled(self) -> bool:
        """Whether `enable_fast_path(compile="full")` compiled the UNet and VAE encoder (CUDA only)."""
        return self._compile_mode == "full"

    @property
    def compile_mode(self) -> str:
        """How the UNet and VAE encoder run: 'off' (eager), 'full', 'graphs' or 'regional' (`PriorConfig.compile`;
        always 'off' on a CPU)."""
        return self._compile_mode

    def graph_counts(self) -> dict:
        """For each module replayed as CUDA graphs ("graphs"/"regional"/"encoder"): its replays and graphs so far (the
        run's manifest keeps them as `model.graphs`). A module that replays on only a few of its calls, or holds a graph
        per call, runs eagerly in effect."""
        counts = {}
        for name, module in (("unet", self.unet), ("controlnet", self.controlnet), ("vae_encoder", self.vae.encoder)):
            if module is not None and hasattr(module, "graph_count"):  # GraphedCall or GraphedModule
                counts[name] = {"replays": module.replays, "graphs": module.graph_count}
        return counts

    def enable_fast_path(self, compile: bool | str = True) -> None:
        """Throughput settings; results change only by float rounding.

        Channels-last memory layout for the UNet and ControlNet (faster convolutions on tensor cores), and on
        CUDA cuDNN autotuning (a process-wide torch setting; float32 matmul precision is left alone) and plain
        bmm attention in the VAE. UNet attention uses PyTorch SDPA (cuDNN/flash kernels), diffusers' default.

        `compile` (CUDA only; true = "full", false = "off") picks how the UNet and VAE encoder run:
          * "full": the UNet is compiled with torch.compile's CUDA graphs ("reduce-overhead") — fused kernels
            replayed as CUDA graphs, one graph per batch size (B for inversion, 2B or 4B for CFG), which removes the
            per-kernel launch cost that makes eager UNet calls launch-bound — and the VAE encoder (which must also
            run backward) is compiled channels-last, with GroupNorms written for that layout (`groupnorm.py`), its
            forward and backward with gradients replayed as CUDA graphs of their own (`graphed.py`). Both compile
            with inductor thresholds that recompute intermediates instead of storing them (`RECOMPUTE_OPTIONS`).
            Compilation takes a few minutes on the first calls, less once its cache (~/.cache/lucidkit/inductor,
            `use_persistent_compile_cache`) holds the compiled code.
          * "graphs": no compiler. The eager UNet (and an attached ControlNet) is replayed as one CUDA graph per
            input signature (`graphed_call.py`), the eager VAE encoder's forward+backward as CUDA graphs
            (`graphed.py`); capturing takes seconds.
          * "regional": as "graphs", but the UNet's repeated transformer blocks are compiled first (diffusers'
            `compile_repeated_blocks`): one compiled block serves every block of the same shape, so compiling takes
            tens of seconds, not minutes.
          * "encoder": as "graphs" for the UNet, the VAE encoder as in "full". In "graphs" the eager encoder's
            forward+backward is half of an update and compute-bound, so a CUDA graph does not speed it up, while
            inductor's fusion halves it (docs/performance.md); its compilation is a part of "full"'s.
        """
        mode = compile_mode(compile)
        for model in (self.unet, self.controlnet):
            if model is not None:
                model.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            from diffusers.models.attention_processor import AttnProcessor

            torch.backends.cudnn.benchmark = True
            # The VAE's one attention layer (4096 tokens × 512 channels, one head at 512²) runs as bmm + softmax:
            # SDPA's memory-efficient backward for head dim 512 took 17 ms of the encoder's 69 ms forward+backward
            # on an H100 (docs/performance.md).
            self.vae.set_attn_processor(AttnProcessor())
            if mode != "off" and self.compile_mode == "off":
                if mode in COMPILING_MODES:
                    use_persistent_compile_cache()
                self._compile_mode = mode
                if mode == "full":
                    self.unet = self.compiled_unet()
                    self.vae.encoder = self.compiled_encoder()
                else:
                    self.unet = self.graphed_unet(regional=mode == "regional")
                    self.controlnet = self.graphed_controlnet(self.controlnet)
                    # eager, the encoder's contiguous layout is the faster one (aten's GroupNorm kernels)
                    self.vae.encoder = (self.compiled_encoder() if mode == "encoder"
                                        else GraphedModule(self.vae.encoder))
        self.source["fast_path"] = True
        self.source["compiled"] = self.compiled
        self.source["compile_mode"] = self.compile_mode

    def graphed_unet(self, regional: bool = False) -> torch.nn.Module:
        """The eager UNet replayed as CUDA graphs without gradients (`GraphedCall`); with `regional`, its repeated
        transformer blocks compiled first (one compilation per block shape and batch size, no CUDA graphs of
        inductor's own: the whole call is captured)."""
        from lucidkit.prior.graphed_call import GraphedCall

        unet = self.unet
        if regional:
            # every block shape × batch size is one more compiled variant of the same code (SD 2.1-base: 4 block
            # shapes × 2 or 3 batch sizes), more than dynamo's default limit of 8
            limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
            setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), 64))
            if hasattr(unet, "compile_repeated_blocks"):  # diffusers >= 0.35
                unet.compile_repeated_blocks(dynamic=False, options=RECOMPUTE_OPTIONS)
            else:
                for block in unet.modules():
                    if type(block).__name__ == "BasicTransformerBlock":
                        block.compile(dynamic=False, options=RECOMPUTE_OPTIONS)
        return GraphedCall(unet)

    def graphed_controlnet(self, controlnet):
        """`controlnet` replayed as CUDA graphs like the UNet in the "graphs", "regional" and "encoder" modes (None
        stays None; other modes keep it eager). `attach_controlnet` passes a ControlNet attached later through here."""
        from lucidkit.prior.graphed_call import GraphedCall

        if controlnet is None or self.compile_mode not in GRAPHED_UNET_MODES or isinstance(controlnet, GraphedCall):
            return controlnet
        return GraphedCall(controlnet)

    def channels_last_encoder(self) -> torch.nn.Module:
        """The eager VAE encoder as the fast path compiles it: channels-last, with GroupNorms written for that
        layout (converted in place, also when it is already compiled; later encodes take channels-last input)."""
        # Compiled, the encoder runs channels-last: cuDNN's Hopper convolutions are NHWC-only, and in the
        # contiguous layout each one transposes its input and output (~10 ms of 39). nn.GroupNorm reads
        # channels-last memory badly, so its statistics are taken per channel first (−5.8 ms measured,
        # docs/performance.md). Eager, the contiguous layout stays faster (aten's GroupNorm kernels).
        from lucidkit.prior.groupnorm import use_channels_last_group_norm

        encoder = self.vae.encoder.module if isinstance(self.vae.encoder, GraphedModule) else self.vae.encoder
        encoder = getattr(encoder, "_orig_mod", encoder)  # the eager module under a compiled one
        use_channels_last_group_norm(encoder)
        for part in (encoder, getattr(self.vae, "quant_conv", None)):  # some VAEs have no quant_conv
            if part is not None:
                part.to(memory_format=torch.channels_last)
        self._vae_layout = torch.channels_last
        return encoder

    def compiled_unet(self, options: dict[str, Any] = RECOMPUTE_OPTIONS) -> torch.nn.Module:
        """The (eager) UNet compiled with CUDA graphs, one per input shape; `options` are inductor settings for this
        compilation only (benchmarks pass others)."""
        unet = getattr(self.unet, "_orig_mod", self.unet)
        return torch.compile(unet, dynamic=False, options={"triton.cudagraphs": True, **options})

    def compiled_encoder(self, options: dict[str, Any] = RECOMPUTE_OPTIONS) -> GraphedModule:
        """`channels_last_encoder()` compiled, its forward+backward replayed as CUDA graphs (CUDA): the CPU then
        queues one launch instead of a few hundred (-4 to -8 ms per update on an H100). `options`
        are inductor settings for this compilation only (benchmarks pass others)."""
        return GraphedModule(torch.compile(self.channels_last_encoder(), dynamic=False, options=options))

    def enable_low_memory(self, max_unet_batch: int = 4) -> None:
        """Trade speed for memory: the VAE recomputes its activations in the backward pass (gradient
        checkpointing of encoder/decoder blocks) and encodes/decodes one image at a time, and UNet calls run at
        most `max_unet_batch` samples at once (the CFG branches one after another). Same results."""
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.vae.enable_gradient_checkpointing()
        self.vae.use_slicing = True
        self.vae.set_attn_processor(AttnProcessor2_0())  # SDPA: no 4096² attention matrix in memory
        self.max_unet_batch = max_unet_batch
        self.source["low_memory"] = True

    def offload_text_encoder(self) -> None:
        """Move the text encoder to the CPU once the prompts are embedded (cached embeddings stay on `device`).
        Later new prompts are still embedded, on the CPU, and moved to `device`."""
        self.text_encoder.to("cpu")
