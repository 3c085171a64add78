"""Write a diffusers Stable Diffusion folder with the true shapes of a shipped architecture and RANDOM weights.

For speed measurements of whole commands (`generate`, `batch`) where no real weights exist: the folder loads
through the same code path as a user's SD 2.1-base folder (`--model FOLDER`), so load time, compile time and
update time are those of the real model; the images are noise. Never use it for quality.

    python tools/gpu/save_random_prior.py /tmp/sd21-random --arch sd21-base

The tokenizer is lucidkit's tiny byte-level tokenizer padded with unreachable filler tokens up to the text
encoder's vocabulary, so that the loader's vocabulary check (which catches incomplete tokenizers) accepts it.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def padded_tokenizer(vocab_size: int, max_len: int):
    """The tiny test tokenizer's tokens and merges, plus fillers no text maps to, `vocab_size` tokens in all."""
    import json
    import tempfile

    from transformers import CLIPTokenizer

    from lucidkit.testing import tiny_tokenizer

    tiny = tiny_tokenizer(model_max_length=max_len)
    with tempfile.TemporaryDirectory() as tmp:  # its vocabulary and merges, as the tokenizer writes them
        tiny.save_pretrained(tmp)
        model = json.loads((Path(tmp) / "tokenizer.json").read_text())["model"]
    vocab = {tok: i for tok, i in model["vocab"].items() if not tok.startswith("<|")}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    for i in range(vocab_size - len(vocab) - 2):
        vocab[f"\u0100filler{i}\u0100</w>"] = len(vocab)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_len)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="Folder to write (must not exist, or be empty).")
    parser.add_argument("--arch", default="sd21-base", 
                        help="Architecture under lucidkit/arch/ (sd21-base, sd15, tiny).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from diffusers import StableDiffusionPipeline

    from lucidkit.prior.random_weights import random_prior

    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} exists and is not empty")
    t0 = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    prior = random_prior(args.arch, device=device, dtype="fp32", seed=args.seed)
    cfg = prior.text_encoder.config
    tokenizer = padded_tokenizer(cfg.vocab_size, cfg.max_position_embeddings)
    pipe = StableDiffusionPipeline(vae=prior.vae, text_encoder=prior.text_encoder, tokenizer=tokenizer,
                                   unet=prior.unet, scheduler=prior.scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    if args.out.exists():
        args.out.rmdir()
    tmp.rename(args.out)
    seconds = time.perf_counter() - t0
    print(f"wrote {args.out} ({args.arch}, random weights, {len(tokenizer)} tokens) in {seconds:.1f} s")


if __name__ == "__main__":
    main()
