"""The Hugging Face hub: the local cache first, a download only when online, a fast clear failure otherwise."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from lucidkit.prior.files import ModelLoadError

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


