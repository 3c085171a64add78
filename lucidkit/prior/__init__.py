"""The diffusion prior: a Stable-Diffusion-format model loaded once and queried by the guidance.

- `core.py`           DiffusionPrior: embeddings, VAE encode/decode, noise prediction, ControlNet residuals
- `load.py`           the five parts from "toy", a short name, a folder, one .safetensors file or a hub id
- `files.py`, `hub.py`  checks of user files, the hub cache; `controlnet.py` ControlNet loading
- `lora_files.py`     LoRA files: checked against the prior's layers, applied through diffusers
- `fast.py`           channels-last, torch.compile + CUDA graphs (`graphed.py`, `groupnorm.py`), low memory
- `random_weights.py` true-shape priors with random weights, for speed benchmarks
- `sampling.py`       images sampled from the prior through diffusers' pipeline

This package imports nothing from the commands, the toy world or the test helpers.
"""

from lucidkit.prior.core import DiffusionPrior
from lucidkit.prior.files import ModelLoadError

__all__ = ["DiffusionPrior", "ModelLoadError"]
