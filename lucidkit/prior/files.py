"""Checks of model files before anything is loaded: safetensors headers, diffusers pipeline folders.

Every problem a user can cause raises `ModelLoadError` (a `UserError`) naming the input and what was expected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lucidkit.errors import UserError


class ModelLoadError(UserError):
    """A model could not be loaded from what the user gave (missing, incomplete, corrupt, unsupported, offline)."""


PIPELINE_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_EXPECTED_FOLDER = (
    "expected a diffusers Stable Diffusion folder with model_index.json, unet/, vae/, text_encoder/, tokenizer/, "
    "scheduler/"
)
_PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")


def check_safetensors_file(path: str | os.PathLike) -> list[str]:
    """Check a .safetensors file's header against its size without loading it; return its tensor names.

    Raises ModelLoadError naming the file if it is truncated, padded or not a safetensors file at all.
    """
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n_header = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n_header <= 1 or 8 + n_header > size:
                raise ValueError("bad header length")
            header = json.loads(f.read(n_header))
        data_end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise ModelLoadError(
            f"weights file {path} is not a valid safetensors file ({err}); re-download or re-export it"
        ) from err
    if 8 + n_header + data_end != size:
        raise ModelLoadError(
            f"weights file {path} is truncated or corrupt: its header describes {8 + n_header + data_end} bytes "
            f"but the file has {size}; re-download or re-export it"
        )
    return [k for k in header if k != "__metadata__"]


def _weight_files(part_dir: Path, stem: str) -> tuple[list[Path], str | None]:
    """Weight files of one model folder (`stem` = "diffusion_pytorch_model" or "model") and the variant to load.

    Preference: plain safetensors (single or sharded), then a `.bin` (loaded with weights_only=True by
    diffusers/transformers), then an fp16 variant. Returns ([], None) if there are none.
    """
    for variant in (None, "fp16"):
        infix = f".{variant}" if variant else ""
        single = part_dir / f"{stem}{infix}.safetensors"
        index = part_dir / f"{stem}{infix}.safetensors.index.json"
        if single.is_file():
            return [single], variant
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError) as err:
                raise ModelLoadError(f"weights index {index} is not valid JSON with a weight_map") from err
            return [part_dir / s for s in shards], variant
        if variant is None and (part_dir / f"{stem}.bin").is_file():
            return [part_dir / f"{stem}.bin"], None
        if variant is None and stem == "model" and (part_dir / "pytorch_model.bin").is_file():
            return [part_dir / "pytorch_model.bin"], None
    return [], None


def validate_pipeline_folder(folder: str | os.PathLike, what: str = "model folder") -> dict[str, str | None]:
    """Check that `folder` is a complete diffusers Stable Diffusion folder; return the weight variant per part.

    Raises ModelLoadError naming the folder and exactly which part is missing or broken.
    """
    folder = Path(folder)
    if not folder.exists():
        raise ModelLoadError(f"{what} {folder} does not exist ({_EXPECTED_FOLDER})")
    if not folder.is_dir():
        raise ModelLoadError(f"{what} {folder} is not a folder ({_EXPECTED_FOLDER}, or a .safetensors file)")
    if not (folder / "model_index.json").is_file():
        raise ModelLoadError(f"{what} {folder} has no model_index.json ({_EXPECTED_FOLDER})")
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except ValueError as err:
        raise ModelLoadError(f"{what} {folder} has an unreadable model_index.json ({err})") from err
    if "text_encoder_2" in index or "transformer" in index:
        raise ModelLoadError(
            f"{what} {folder} holds a {index.get('_class_name', 'non-SD 1.x/2.x')} pipeline; lucidkit supports "
            "Stable Diffusion 1.x/2.x pipelines (SDXL, SD3 and transformer-based models are not supported)"
        )
    for part in PIPELINE_PARTS:
        if not (folder / part).is_dir():
            raise ModelLoadError(f"{what} {folder} has no {part}/ ({_EXPECTED_FOLDER})")
    variants: dict[str, str | None] = {}
    for part, stem in (
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    ):
        part_dir = folder / part
        if not (part_dir / "config.json").is_file():
            raise ModelLoadError(f"{what} {folder} has no {part}/config.json ({_EXPECTED_FOLDER})")
        files, variants[part] = _weight_files(part_dir, stem)
        if not files:
            raise ModelLoadError(f"{what} {folder} has no weights in {part}/ (expected {stem}.safetensors)")
        for file in files:
            if not file.is_file():
                raise ModelLoadError(f"{what} {folder} is missing the weights shard {file}")
            if file.suffix == ".safetensors":
                check_safetensors_file(file)
    tok = folder / "tokenizer"
    if not ((tok / "tokenizer.json").is_file() or ((tok / "vocab.json").is_file() and (tok / "merges.txt").is_file())):
        raise ModelLoadError(
            f"{what} {folder} has an incomplete tokenizer/ (expected tokenizer.json, or vocab.json and merges.txt)"
        )
    if not (folder / "scheduler" / "scheduler_config.json").is_file():
        raise ModelLoadError(f"{what} {folder} has no scheduler/scheduler_config.json ({_EXPECTED_FOLDER})")
    return variants


