"""DreamBooth-style LoRA personalisation of the prior, the engine behind `lucidkit train-lora`:
`config.py` (TrainLoraConfig), `photos.py` (the subject photos), `adapters.py` (peft LoRA layers, saving),
`train.py` (class images, the training step, checkpoints) and `run.py` (the run)."""

from lucidkit.lora.config import TrainLoraConfig, resolve_config
from lucidkit.lora.run import LoraResult, run

__all__ = ["LoraResult", "TrainLoraConfig", "resolve_config", "run"]
