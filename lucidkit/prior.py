"""DiffusionPrior: a Stable-Diffusion-format text-to-image prior, loaded once and queried by the guidance.

Where weights come from (`DiffusionPrior.load(spec)`):
- "toy": the small prior lucidkit trains on its procedural world, shipped in samples/toy-prior;
- a short name from lucidkit.models ("sd21-base", "sd15"): a hub repository pinned to a revision;
- a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/);
- one `.safetensors` file in the original SD 1.x/2.x layout, converted by diffusers with the configs shipped
  in lucidkit/arch (no download); pickled `.ckpt`/`.pt` files are refused;
- a hub id "org/name" (optionally "org/name@revision"): from the local hub cache, or downloaded when online.
Every failure a user can cause raises a `ModelLoadError` (a `UserError`) naming the input and what was expected.

What the prior computes (symbols as in ISM.md):
- `embed(prompts)`            e = text_encoder(tokens)            [n, L, D]
- `encode_images(img)`        z0 = vae.encode(2·img − 1).sample · scaling_factor   (differentiable)
- `decode_latents(z0)`        img = (vae.decode(z0 / scaling_factor) + 1) / 2
- `predict_noise(x, t, e)`    ε(x, t, e), always ε even for v-prediction models   (no grad)

Models live on `device` in `dtype` (float32 on CPU; bfloat16/float16 allowed on CUDA), in eval mode with
requires_grad False; the VAE encoder still passes gradients to its input image. Outputs are float32.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from lucidkit.devices import to_device
from lucidkit.errors import UserError
from lucidkit.graphed import GraphedModule
from lucidkit.models import TOY, get_model, model_names, toy_prior_dir


# Inductor stores a value that several kernels read once it reads > 4 inputs, has > 30 ops or has accumulated > 8
# reads; in the encoder's GroupNorm + SiLU backward those values are float32 copies of whole activations. With these
# thresholds each kernel recomputes them from the bf16 inputs instead: 31.3 -> 14.6 GB moved by the encoder's Triton
# kernels, forward+backward 29.8 -> 26.1 ms, same error against float32 (bench/results/encoder_realize_14.txt); the
# UNet's batch-4 call 10.19 -> 10.04 ms (bench/results/encoder_realize_15.txt).
RECOMPUTE_OPTIONS = {"realize_reads_threshold": 16, "realize_opcount_threshold": 100, "realize_acc_reads_threshold": 16}


class ModelLoadError(UserError):
    """A model could not be loaded from what the user gave (missing, incomplete, corrupt, unsupported, offline)."""


PIPELINE_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_EXPECTED_FOLDER = (
    "expected a diffusers Stable Diffusion folder with model_index.json, unet/, vae/, text_encoder/, tokenizer/, "
    "scheduler/"
)
_PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
# hub ids look like "org/name" or "org/name@revision"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
# files a pipeline needs from a hub repository (safetensors only, no fp16 duplicates)
_HUB_PIPELINE_FILES = ["model_index.json", "scheduler/*", "tokenizer/*"] + [
    f"{part}/{pattern}"
    for part, stem in (
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    )
    for pattern in ("config.json", f"{stem}.safetensors", f"{stem}.safetensors.index.json", f"{stem}-*.safetensors")
]
_HUB_CONTROLNET_FILES = [
    "config.json",
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "diffusion_pytorch_model-*.safetensors",
]


# ----------------------------------------------------------------------------------------------------------
# precision and device


def resolve_dtype(precision: str | torch.dtype, device: str | torch.device) -> torch.dtype:
    """Turn a `--precision` value into a torch dtype for `device`.

    "auto" -> bfloat16 on CUDA (float16 if the GPU lacks bf16), float32 on CPU; "fp32"/"bf16"/"fp16" (or the
    torch names) are taken as given. Half precision on CPU is refused: it is slow there and the CPU path is
    only meant for small models.
    """
    device = torch.device(device)
    if isinstance(precision, torch.dtype):
        dtype = precision
    else:
        names = {
            "fp32": torch.float32,
            "float32": torch.float32,
            "float": torch.float32,
            "bf16": torch.bfloat16,
            "bfloat16": torch.bfloat16,
            "fp16": torch.float16,
            "float16": torch.float16,
            "half": torch.float16,
        }
        key = str(precision).lower()
        if key == "auto":
            if device.type != "cuda":
                return torch.float32
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if key not in names:
            raise UserError(f"unknown precision {precision!r}: expected auto, fp32, bf16 or fp16")
        dtype = names[key]
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise UserError(f"unsupported precision {dtype}: expected fp32, bf16 or fp16")
    if device.type == "cpu" and dtype != torch.float32:
        raise UserError(f"precision {_dtype_name(dtype)} needs a CUDA device; on CPU use fp32")
    return dtype


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def _check_device(device: str | torch.device) -> torch.device:
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise UserError(f"unknown device {device!r}: expected cpu or cuda[:N]") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device} was asked for but CUDA is not available on this machine; use cpu")
    return device


@contextmanager
def _quiet_libraries():
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


# ----------------------------------------------------------------------------------------------------------
# file checks


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


# ----------------------------------------------------------------------------------------------------------
# the hub (cache first; download only when online; fail fast otherwise)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """One TCP connection attempt to the hub endpoint, so that a machine without network fails in seconds
    instead of after minutes of HTTP retries. Behind a proxy we cannot tell, so we say yes."""
    from huggingface_hub import constants

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


_ADVICE_PRIOR = "pass a local diffusers model folder or a .safetensors file instead (e.g. --model /path/to/folder)"


def _hub_folder(
    repo_id: str,
    revision: str | None,
    patterns: list[str],
    fallback_ids: tuple[str, ...] = (),
    label: str | None = None,
    advice: str = _ADVICE_PRIOR,
) -> Path:
    """A local snapshot folder of a hub repository: from the cache if there, else downloaded (when online).

    Errors read "cannot load {label}: {reason}; {advice}" (label defaults to the repo id and revision).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    # 1. the local cache: the pinned revision, then older ids of the same weights
    for rid, rev in [(repo_id, revision)] + [(f, None) for f in fallback_ids]:
        try:
            return Path(snapshot_download(rid, revision=rev, allow_patterns=patterns, local_files_only=True))
        except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
            pass
    if label is None:
        label = f"hub model '{repo_id}@{revision}'" if revision else f"hub model '{repo_id}'"
    tail = f"; {advice}" if advice else ""
    # 2. offline, or no route to the hub: say so now rather than after minutes of retries
    if _hub_offline():
        raise ModelLoadError(
            f"cannot load {label}: offline mode (HF_HUB_OFFLINE) is on and it is not in the local hub cache{tail}"
        )
    if not _hub_reachable():
        raise ModelLoadError(
            f"cannot load {label}: the hub is unreachable (no network) and it is not in the local hub cache{tail}"
        )
    # 3. download just the files we use
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise ModelLoadError(
            f"cannot load {label}: no such hub repository, or it needs access rights (`hf auth login`){tail}"
        ) from err
    except RevisionNotFoundError as err:
        raise ModelLoadError(f"cannot load {label}: the hub repository has no revision '{revision}'") from err
    except OSError as err:
        raise ModelLoadError(f"cannot load {label}: download failed ({err}){tail}") from err


# ----------------------------------------------------------------------------------------------------------
# component loading


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
# the engine object


class DiffusionPrior:
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

        self.device = _check_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.unet, self.vae, self.text_encoder = unet, vae, text_encoder
        for model in (self.unet, self.vae, self.text_encoder):
            _move(model, self.device, self.dtype)
            model.eval()
            model.requires_grad_(False)
        self.tokenizer = tokenizer
        self.scheduler = (
            scheduler if isinstance(scheduler, DDIMScheduler) else DDIMScheduler.from_config(scheduler.config)
        )
        self.controlnet = None
        self._compiled = False
        self._vae_layout = torch.contiguous_format  # the encoder's input layout (channels-last once compiled)
        self.max_unet_batch = 0  # 0 = no limit
        self.source: dict[str, Any] = {
            "dtype": _dtype_name(self.dtype),
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
        device = _check_device(device)
        dtype = resolve_dtype(dtype, device)
        with _quiet_libraries():
            parts, source = _load_parts(str(spec), dtype, config, tokenizer)
        return cls(**parts, device=device, dtype=dtype, source=source)

    @classmethod
    def from_arch(
        cls, arch: str, device: str | torch.device = "cpu", dtype: str | torch.dtype = torch.float32, seed: int = 0
    ) -> "DiffusionPrior":
        """A prior with the true shapes of a shipped architecture ("sd21-base", "sd15") and RANDOM weights.

        For speed and memory benchmarks only: it produces noise. The tokenizer is lucidkit's tiny test tokenizer
        (token ids fit SD's vocabulary; embeddings are meaningless anyway). Weights are created on `device`.
        """
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        from lucidkit.arch import arch_file
        from lucidkit.testing import tiny_tokenizer

        device = _check_device(device)
        cfg = {
            part: json.loads(arch_file(arch, part).read_text()) for part in ("unet", "vae", "text_encoder", "scheduler")
        }
        text_cfg = {k: v for k, v in cfg["text_encoder"].items() if k not in ("architectures", "model_type")}
        torch.manual_seed(seed)
        with torch.device(device):
            unet = UNet2DConditionModel.from_config(cfg["unet"])
            vae = AutoencoderKL.from_config(cfg["vae"])
            text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
        scheduler = DDIMScheduler.from_config(cfg["scheduler"])
        tok = tiny_tokenizer(model_max_length=text_cfg.get("max_position_embeddings", 77))
        # the tiny tokenizer is far smaller than SD's vocabulary, which the tokenizer check would reject
        return cls(
            unet,
            vae,
            text_encoder,
            tok,
            scheduler,
            device=device,
            dtype=dtype,
            check_tokenizer=False,
            source={"spec": f"random:{arch}", "kind": "random", "arch": arch, "seed": seed},
        )

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
        if self._compiled:
            torch.compiler.cudagraph_mark_step_begin()  # outputs of earlier graph replays may be reused
        out = self.unet(x_in, t, encoder_hidden_states=e_in, return_dict=False, **extra)[0]
        out = out.float() if out.dtype != torch.float32 or not self._compiled else out.clone()  # [B, C, h, w]
        if self.prediction_type == "v_prediction":
            a = self.alphas_cumprod[t].view(-1, 1, 1, 1)  # [B, 1, 1, 1]
            out = a.sqrt() * out + (1 - a).sqrt() * x.to(self.device, torch.float32)
        return out

    # --- ControlNet -----------------------------------------------------------------------------------------

    def attach_controlnet(self, controlnet: Any, *, source: dict | str | None = None) -> None:
        """Attach a ControlNetModel (already loaded), or load one: "controlnet-openpose", a folder with
        config.json + weights, a hub id, or "random" (SD 1.5 OpenPose shapes, random weights, benchmarks only)."""
        if isinstance(controlnet, (str, os.PathLike)):
            with _quiet_libraries():
                controlnet, source = _load_controlnet(str(controlnet), self.device)
        if controlnet.config.cross_attention_dim != self.unet.config.cross_attention_dim:
            raise ModelLoadError(
                f"ControlNet {source or ''} attends to {controlnet.config.cross_attention_dim}-wide text but the "
                f"prior's UNet uses {self.unet.config.cross_attention_dim}: they belong to different model families"
            )
        _move(controlnet, self.device, self.dtype).eval().requires_grad_(False)
        self.controlnet = controlnet
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

    # --- LoRA -----------------------------------------------------------------------------------------------

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
        from lucidkit.lora import check_lora_fits

        check_lora_fits(self, file, str(path))  # a LoRA made for another model: one clear line, not a shape dump
        name = adapter_name or f"lora{len(self.source['loras'])}"
        # a pipeline object around our own models gives us diffusers' LoRA loader (all common formats)
        pipe = self.as_pipeline()
        with _quiet_libraries():
            try:
                pipe.load_lora_weights(str(file.parent), weight_name=file.name, adapter_name=name)
            except Exception as err:  # noqa: BLE001
                raise ModelLoadError(
                    f"cannot apply LoRA {path} to {self.source.get('spec')} ({type(err).__name__}: {err})"
                ) from err
            self.source["loras"].append({"path": str(path), "scale": float(scale), "adapter": name})
            pipe.set_adapters([a["adapter"] for a in self.source["loras"]], [a["scale"] for a in self.source["loras"]])
        for model in (self.unet, self.text_encoder):
            _move(model, self.device, self.dtype).eval().requires_grad_(False)
        self._emb_cache.clear()
        return name

    def as_pipeline(self):
        """A `StableDiffusionPipeline` around this prior's own models (shared, not copied; no safety checker):
        for diffusers' LoRA loader and for sampling images from the prior."""
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

    # --- speed and memory options -----------------------------------------------------------------------------

    @property
    def compiled(self) -> bool:
        """Whether `enable_fast_path(compile=True)` compiled the UNet and VAE encoder (CUDA only)."""
        return self._compiled

    def enable_fast_path(self, compile: bool = True) -> None:
        """Throughput settings; results change only by float rounding.

        Channels-last memory layout for the UNet and ControlNet (faster convolutions on tensor cores), and on
        CUDA cuDNN autotuning (a process-wide torch setting; float32 matmul precision is left alone) and plain
        bmm attention in the VAE. UNet attention uses PyTorch SDPA (cuDNN/flash kernels), diffusers' default.

        With `compile` (CUDA only): the UNet is compiled with torch.compile's CUDA graphs ("reduce-overhead") —
        fused kernels replayed as CUDA graphs, one graph per batch size (B for inversion, 2B or 4B for CFG), which
        removes the per-kernel launch cost that makes eager UNet calls launch-bound — and the VAE encoder (which must
        also run backward) is compiled channels-last, with GroupNorms written for that layout
        (`lucidkit/groupnorm.py`), its forward and backward with gradients replayed as CUDA graphs of their own
        (`lucidkit/graphed.py`). Both compile with inductor thresholds that recompute intermediates instead of
        storing them (`RECOMPUTE_OPTIONS`). Compilation takes a few minutes on the first calls, less once its cache
        (~/.cache/lucidkit/inductor, `use_persistent_compile_cache`) holds the compiled code.
        """
        for model in (self.unet, self.controlnet):
            if model is not None:
                model.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            from diffusers.models.attention_processor import AttnProcessor

            torch.backends.cudnn.benchmark = True
            # The VAE's one attention layer (4096 tokens × 512 channels, one head at 512²) runs as bmm + softmax:
            # SDPA's memory-efficient backward for head dim 512 took 17 ms of the encoder's 69 ms forward+backward
            # (bench/results/profile_vae.txt).
            self.vae.set_attn_processor(AttnProcessor())
            if compile and not self._compiled:
                use_persistent_compile_cache()
                self.unet = self.compiled_unet()
                self.vae.encoder = self.compiled_encoder()
                self._compiled = True
        self.source["fast_path"] = True
        self.source["compiled"] = self._compiled

    def channels_last_encoder(self) -> torch.nn.Module:
        """The eager VAE encoder as the fast path compiles it: channels-last, with GroupNorms written for that
        layout (converted in place, also when it is already compiled; later encodes take channels-last input)."""
        # Compiled, the encoder runs channels-last: cuDNN's Hopper convolutions are NHWC-only, and in the
        # contiguous layout each one transposes its input and output (~10 ms of 39). nn.GroupNorm reads
        # channels-last memory badly, so its statistics are taken per channel first (−5.8 ms measured,
        # bench/results/levers.md). Eager, the contiguous layout stays faster (aten's GroupNorm kernels).
        from lucidkit.groupnorm import use_channels_last_group_norm

        encoder = self.vae.encoder.module._orig_mod if isinstance(self.vae.encoder, GraphedModule) else self.vae.encoder
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
        queues one launch instead of a few hundred (-4 to -8 ms per update, bench/results/levers.md). `options`
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
            f"{self.latent_size}², {_dtype_name(self.dtype)} on {self.device})"
        )


def use_persistent_compile_cache() -> Path | None:
    """Keep torch.compile's caches (compiled graphs, Triton kernels, autotuning) in ~/.cache/lucidkit/inductor
    instead of the temporary folder, so that they outlive a reboot: a later run compiles from them in about a third
    of the time. A TORCHINDUCTOR_CACHE_DIR set by the user wins; an unwritable home keeps torch's default."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is not None and os.path.abspath(current) != os.path.abspath(default_cache_dir()):
        return Path(current)
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lucidkit" / "inductor"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    return folder


def _move(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move to device, and cast only if some parameter has another dtype (diffusers warns on every cast)."""
    model.to(device)
    if any(p.dtype != dtype for p in model.parameters()):
        model.to(dtype)
    return model


_ADVICE_CONTROLNET = "pass a local diffusers ControlNet folder (config.json + diffusion_pytorch_model.safetensors)"


def _load_controlnet(spec: str, device: torch.device):
    """Load a ControlNetModel (float32, CPU) from a short name, folder, hub id or "random"."""
    from diffusers import ControlNetModel

    from lucidkit.arch import arch_file

    if spec == "random":
        cfg = json.loads(arch_file("sd15", "controlnet_openpose").read_text())
        with torch.device(device):
            return ControlNetModel.from_config(cfg), {"spec": spec, "kind": "random", "arch": "sd15"}
    entry = get_model(spec)
    path = Path(spec).expanduser()
    if entry is not None:
        if entry.kind != "controlnet":
            raise ModelLoadError(
                f"'{spec}' is a {entry.kind}, not a ControlNet (known: {', '.join(model_names('controlnet'))})"
            )
        folder = _hub_folder(
            entry.repo_id,
            entry.revision,
            _HUB_CONTROLNET_FILES,
            entry.fallback_repo_ids,
            label=f"ControlNet '{spec}' (hub {entry.repo_id})",
            advice=_ADVICE_CONTROLNET,
        )
        source = {"spec": spec, "kind": "hub", "repo_id": entry.repo_id, "revision": entry.revision}
    elif path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ModelLoadError(
            f"ControlNet {path} is a pickle ({path.suffix}); pass a .safetensors file or a diffusers folder"
        )
    elif path.is_file():
        raise ModelLoadError(f"ControlNet {path} is a single file; {_ADVICE_CONTROLNET}")
    elif path.exists() or not _HUB_ID.match(spec):
        folder = path
        source = {"spec": spec, "kind": "folder", "path": str(path)}
    else:
        repo_id, _, revision = spec.partition("@")
        folder = _hub_folder(
            repo_id,
            revision or None,
            _HUB_CONTROLNET_FILES,
            label=f"ControlNet '{spec}' (no such local folder; tried as a hub id)",
            advice=_ADVICE_CONTROLNET,
        )
        source = {"spec": spec, "kind": "hub", "repo_id": repo_id, "revision": revision or None}
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"ControlNet folder {folder} has no config.json (expected a diffusers ControlNet folder)")
    files, variant = _weight_files(folder, "diffusion_pytorch_model")
    if not files:
        raise ModelLoadError(
            f"ControlNet folder {folder} has no weights (expected diffusion_pytorch_model.safetensors)"
        )
    for file in files:
        if file.suffix == ".safetensors":
            check_safetensors_file(file)
    try:
        model = ControlNetModel.from_pretrained(str(folder), variant=variant, local_files_only=True)
    except Exception as err:  # noqa: BLE001
        raise ModelLoadError(f"cannot load ControlNet from {folder} ({type(err).__name__}: {err})") from err
    return model, source
