"""Loading the five parts of a Stable Diffusion prior (UNet, VAE, text encoder, tokenizer, scheduler) from what a
user has: "toy", a short model name, a diffusers folder, one original-layout `.safetensors` file, or a hub id."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from lucidkit.models import TOY, get_model, model_names, toy_prior_dir
from lucidkit.prior.files import _PICKLE_SUFFIXES, ModelLoadError, check_safetensors_file, validate_pipeline_folder
from lucidkit.prior.hub import _HUB_ID, _HUB_PIPELINE_FILES, _hub_folder


@contextmanager
def quiet_libraries():
    """Silence diffusers/transformers progress bars and info/warning chatter while loading; restore after."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    saved = [(lib, lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in (dlog, tlog)]
    try:
        for lib, _, _ in saved:
            lib.set_verbosity_error()
            lib.disable_progress_bar()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for lib, level, bar in saved:
            lib.set_verbosity(level)
            if bar:
                lib.enable_progress_bar()


def _load_tokenizer(folder: Path, what: str):
    from transformers import CLIPTokenizer

    try:
        return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # noqa: BLE001 - transformers raises many types for bad files
        raise ModelLoadError(f"cannot load the tokenizer of {what} from {folder} ({err})") from err


def _check_tokenizer(tokenizer, text_encoder, what: str) -> None:
    """An incomplete tokenizer (e.g. a hub id resolved offline) loads silently with a handful of tokens; catch it."""
    n_tokens, vocab_size = len(tokenizer), text_encoder.config.vocab_size
    if n_tokens > vocab_size or n_tokens < max(16, vocab_size // 2):
        raise ModelLoadError(
            f"the tokenizer of {what} has {n_tokens} tokens but its text encoder expects a vocabulary of {vocab_size}: "
            "the tokenizer files are missing, incomplete or belong to another model"
        )


def _load_pipeline_folder(folder: Path, what: str, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Load the five parts of a diffusers SD folder (validated first) on CPU; diffusers models in `dtype`."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    variants = validate_pipeline_folder(folder, what)
    parts: dict[str, Any] = {}
    loaders = {
        "unet": lambda v: UNet2DConditionModel.from_pretrained(
            str(folder), subfolder="unet", variant=v, torch_dtype=dtype, local_files_only=True
        ),
        "vae": lambda v: AutoencoderKL.from_pretrained(
            str(folder), subfolder="vae", variant=v, torch_dtype=dtype, local_files_only=True
        ),
        "text_encoder": lambda v: CLIPTextModel.from_pretrained(
            str(folder / "text_encoder"), variant=v, local_files_only=True
        ),
    }
    for part, load in loaders.items():
        try:
            parts[part] = load(variants[part])
        except Exception as err:  # noqa: BLE001 - report which part failed, with the library's reason
            raise ModelLoadError(f"cannot load {part}/ of {what} {folder} ({type(err).__name__}: {err})") from err
    parts["tokenizer"] = _load_tokenizer(folder / "tokenizer", f"{what} {folder}")
    try:
        parts["scheduler"] = DDIMScheduler.from_pretrained(str(folder), subfolder="scheduler")
    except Exception as err:  # noqa: BLE001
        raise ModelLoadError(f"cannot read scheduler/scheduler_config.json of {what} {folder} ({err})") from err
    return parts


def _write_arch_config_folder(arch: str, dest: Path) -> Path:
    """Lay out the shipped arch JSONs as a diffusers config folder (no weights) for `from_single_file`."""
    from lucidkit.arch import arch_file

    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.30.0",
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (dest / "model_index.json").write_text(json.dumps(index, indent=2))
    for part, file in (
        ("unet", "config.json"),
        ("vae", "config.json"),
        ("text_encoder", "config.json"),
        ("scheduler", "scheduler_config.json"),
    ):
        (dest / part).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(arch_file(arch, part), dest / part / file)
    return dest


def detect_single_file_arch(path: Path, keys: list[str]) -> str:
    """Which shipped architecture a single-file SD checkpoint has, from its tensor names (no weights read)."""
    if not any(k.startswith("model.diffusion_model.") for k in keys):
        raise ModelLoadError(
            f"checkpoint {path} is not an original-layout Stable Diffusion 1.x/2.x file (no model.diffusion_model.* "
            "tensors); for a diffusers folder pass the folder itself"
        )
    if any(k.startswith("conditioner.") for k in keys):
        raise ModelLoadError(f"checkpoint {path} looks like SDXL; lucidkit supports Stable Diffusion 1.x/2.x")
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd21-base"  # OpenCLIP text encoder: SD 2.x
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return "sd15"  # OpenAI CLIP text encoder: SD 1.x
    raise ModelLoadError(f"checkpoint {path} has no text encoder (cond_stage_model.*); cannot tell SD 1.x from 2.x")


def _load_single_file(
    path: Path, config: str | None, tokenizer: str | None, dtype: torch.dtype = torch.float32
) -> tuple[dict[str, Any], str]:
    """Load an original-layout SD checkpoint; return its parts and the arch (or config folder) used."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    keys = check_safetensors_file(path)
    with tempfile.TemporaryDirectory(prefix="lucidkit-arch-") as tmp:
        if config is not None:
            config_dir = Path(config)
            if not (config_dir / "model_index.json").is_file():
                raise ModelLoadError(
                    f"config folder {config_dir} for {path} has no model_index.json "
                    "(expected the configs of a diffusers model folder)"
                )
            arch = str(config_dir)
        else:
            arch = detect_single_file_arch(path, keys)
            config_dir = _write_arch_config_folder(arch, Path(tmp))
        tok = _single_file_tokenizer(path, arch, config_dir, tokenizer)
        try:
            pipe = StableDiffusionPipeline.from_single_file(
                str(path),
                config=str(config_dir),
                tokenizer=tok,
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
                local_files_only=True,
                torch_dtype=dtype,
            )
        except Exception as err:  # noqa: BLE001
            raise ModelLoadError(
                f"cannot convert single-file checkpoint {path} with the {arch} configs ({type(err).__name__}: {err})"
            ) from err
    parts = {
        "unet": pipe.unet,
        "vae": pipe.vae,
        "text_encoder": pipe.text_encoder,
        "tokenizer": pipe.tokenizer,
        "scheduler": DDIMScheduler.from_config(pipe.scheduler.config),
    }
    return parts, arch


def _single_file_tokenizer(path: Path, arch: str, config_dir: Path, tokenizer: str | None):
    """A single file has no tokenizer: take it from `tokenizer=`, the config folder, or the hub cache of its family."""
    if tokenizer is not None:
        tok_dir = Path(tokenizer)
        for c in (tok_dir / "tokenizer", tok_dir):
            if (c / "tokenizer.json").is_file() or (c / "vocab.json").is_file():
                return _load_tokenizer(c, f"checkpoint {path}")
        raise ModelLoadError(f"tokenizer folder {tok_dir} for {path} has no tokenizer.json or vocab.json + merges.txt")
    if (config_dir / "tokenizer").is_dir():
        return _load_tokenizer(config_dir / "tokenizer", f"checkpoint {path}")
    entry = get_model(arch)
    if entry is None:
        raise ModelLoadError(f"checkpoint {path} needs a tokenizer: pass one with tokenizer=FOLDER (--tokenizer)")
    try:
        snap = _hub_folder(
            entry.repo_id,
            entry.revision,
            ["tokenizer/*"],
            entry.fallback_repo_ids,
            label=f"the {arch} tokenizer (hub {entry.repo_id})",
            advice="",
        )
    except ModelLoadError as err:
        raise ModelLoadError(
            f"single-file checkpoint {path} ({arch}) holds no tokenizer, and {err}. Pass a tokenizer folder "
            f"(any {arch} diffusers folder, or its tokenizer/) with --tokenizer"
        ) from err
    return _load_tokenizer(snap / "tokenizer", f"checkpoint {path}")


def _load_parts(text: str, dtype: torch.dtype, config, tokenizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Resolve a model spec (see DiffusionPrior.load) and load its five parts; return (parts, source)."""
    source: dict[str, Any] = {"spec": text}
    entry = get_model(text)
    path = Path(text).expanduser()

    if (config is not None or tokenizer is not None) and path.suffix.lower() != ".safetensors":
        raise ModelLoadError(f"config/tokenizer folders apply to single .safetensors checkpoints only, not to '{text}'")
    if entry is not None and entry.kind != "pipeline":
        raise ModelLoadError(
            f"'{text}' is a {entry.kind}, not a diffusion prior (known priors: {', '.join(model_names('pipeline'))})"
        )
    if text == TOY:
        folder = toy_prior_dir(check=True)
        parts = _load_pipeline_folder(folder, "toy prior folder", dtype)
        source.update(kind="toy", path=str(folder))
    elif entry is not None:
        folder = _hub_folder(
            entry.repo_id,
            entry.revision,
            _HUB_PIPELINE_FILES,
            entry.fallback_repo_ids,
            label=f"model '{text}' (hub {entry.repo_id})",
        )
        parts = _load_pipeline_folder(folder, f"hub cache of {entry.name} ({entry.repo_id}), folder", dtype)
        source.update(kind="hub", repo_id=entry.repo_id, revision=entry.revision, path=str(folder))
    elif path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ModelLoadError(
            f"{path} is a pickled checkpoint ({path.suffix}); lucidkit loads only .safetensors files, which "
            "cannot run code when opened. Convert it to .safetensors (e.g. torch.load(..., weights_only=True) "
            "then safetensors.torch.save_file) or pass a diffusers model folder"
        )
    elif path.suffix.lower() == ".safetensors" or path.is_file():
        if not path.is_file():
            raise ModelLoadError(f"checkpoint file {path} does not exist")
        if path.suffix.lower() != ".safetensors":
            raise ModelLoadError(
                f"{path} is a file but not a .safetensors checkpoint (or pass a diffusers model folder)"
            )
        parts, arch = _load_single_file(
            path, None if config is None else str(config), None if tokenizer is None else str(tokenizer), dtype
        )
        source.update(kind="single_file", path=str(path), arch=arch)
    elif path.exists() or not _HUB_ID.match(text) or text.startswith((".", "/", "~")):
        if not path.exists() and "/" not in text:
            raise ModelLoadError(
                f"model '{text}' is neither a known model name ({', '.join(model_names('pipeline'))}) nor an existing "
                "folder or .safetensors file"
            )
        parts = _load_pipeline_folder(path, "model folder", dtype)
        source.update(kind="folder", path=str(path))
    else:
        repo_id, _, revision = text.partition("@")
        folder = _hub_folder(
            repo_id,
            revision or None,
            _HUB_PIPELINE_FILES,
            label=f"'{text}' (no such local folder or file; tried as a hub id)",
        )
        parts = _load_pipeline_folder(folder, f"hub cache of {repo_id}, folder", dtype)
        source.update(kind="hub", repo_id=repo_id, revision=revision or None, path=str(folder))
    return parts, source


# ----------------------------------------------------------------------------------------------------------

def move_model(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move to device, and cast only if some parameter has another dtype (diffusers warns on every cast)."""
    model.to(device)
    if any(p.dtype != dtype for p in model.parameters()):
        model.to(dtype)
    return model


