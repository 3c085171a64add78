"""The ways of running the prior's UNet and VAE encoder on CUDA (`PriorConfig.compile`, `enable_fast_path`)."""

from __future__ import annotations

from lucidkit.config import ConfigError

# How the UNet and the VAE encoder run on CUDA (`PriorConfig.compile`; what each costs: docs/performance.md)
COMPILE_MODES = {
    "off": "eager",
    "full": "torch.compile of the whole UNet with CUDA graphs and of the VAE encoder (minutes of start-up)",
    "graphs": "the eager UNet replayed as one CUDA graph per input shape, no compiler (seconds of start-up)",
    "regional": "the UNet's repeated transformer blocks compiled, then replayed as CUDA graphs like 'graphs'",
    "encoder": "the VAE encoder compiled as in 'full', the eager UNet replayed as CUDA graphs as in 'graphs'",
}
COMPILING_MODES = ("full", "regional", "encoder")  # run inductor, so a compile cache makes a later start faster
GRAPHED_UNET_MODES = ("graphs", "regional", "encoder")  # the UNet (and ControlNet) replayed by `GraphedCall`


def compile_mode(value: bool | str) -> str:
    """The mode a `compile` value names: true = 'full', false = 'off', or one of COMPILE_MODES; else ConfigError."""
    if isinstance(value, bool):
        return "full" if value else "off"
    if isinstance(value, str) and value.strip().lower() in COMPILE_MODES:
        return value.strip().lower()
    raise ConfigError(f"prior.compile: expected one of {', '.join(COMPILE_MODES)} (or true = full, false = off), "
                      f"got {value!r}")
