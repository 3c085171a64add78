"""Priors with the true shapes of a real architecture and RANDOM weights, for speed and memory benchmarks only
(they produce noise), with a tokenizer built in memory (no download)."""

from __future__ import annotations

import json

import torch

from lucidkit.devices import check_device
from lucidkit.prior.core import DiffusionPrior

# Words whose BPE merges the tiny tokenizer learns, so that it exercises real merges (any ASCII text
# still tokenises: every byte has a token of its own).
_MERGE_WORDS = ("a", "red", "blue", "cube", "sphere", "photo", "front", "side", "back", "view")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from the 256 byte values to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def tiny_tokenizer(model_max_length: int = 77):
    """A CLIP tokenizer built in memory: every byte as a token (with and without the `</w>` end-of-word
    suffix), a few merges for common toy words, and CLIP's `<|startoftext|>` / `<|endoftext|>` tokens."""
    from transformers import CLIPTokenizer

    alphabet = list(bytes_to_unicode().values())  # 256 single-character tokens
    tokens = alphabet + [c + "</w>" for c in alphabet]
    merges: list[tuple[str, str]] = []
    for word in _MERGE_WORDS:
        # Merge left to right: "c u" -> "cu", "cu b" -> "cub", "cub e</w>" -> "cube</w>".
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merge = (pieces[0], pieces[1])
            merged = pieces[0] + pieces[1]
            if merge not in merges:
                merges.append(merge)
            if merged not in tokens:
                tokens.append(merged)
            pieces = [merged] + pieces[2:]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def random_prior(
    arch: str, device: str | torch.device = "cpu", dtype: str | torch.dtype = torch.float32, seed: int = 0
) -> DiffusionPrior:
    """A prior with the true shapes of a shipped architecture ("sd21-base", "sd15") and RANDOM weights.

    For speed and memory benchmarks only: it produces noise. The tokenizer is lucidkit's tiny test tokenizer
    (token ids fit SD's vocabulary; embeddings are meaningless anyway). Weights are created on `device`.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from lucidkit.arch import arch_file

    device = check_device(device)
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
    return DiffusionPrior(
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
