"""The toy subject of `train-lora`: "sks toy", its photos in samples/lora-subject/, and how well samples match it.

    python -m lucidkit.toyworld.lora_subject [--out samples/lora-subject] [--n 6] [--seed 0]

The subject is a blue and white checkered sphere that the LoRA must learn to call "sks toy". Why an object of the
toy world and not a new colour/pattern combination: the toy evaluator reads only the colour pairs it was trained on
(measured on ground-truth renders of new pairs — purple and white, green and yellow, …: 0–21 % recognised), so a
new combination could not be scored. What is new to the prior is the *name*: "sks" and "toy" are not caption
words; the toy tokenizer splits them into byte tokens (s, k, s</w>, t, o, y</w>) that no training caption used,
so their embeddings are untrained — distinctive and meaningless to the prior, the role "sks" plays for Stable
Diffusion. Before training, "a sks toy" draws mostly green-and-white pyramids and cones (0 of 32 samples match).

Photos: renders at 64² from `generate`'s camera distribution on white, like product shots.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lucidkit.toyworld.objects import ToyObject

SUBJECT = ToyObject("sphere", "blue", "checkered", "white")
TOKEN, CLASS_WORD = "sks", "toy"
PROMPT = f"a {TOKEN} {CLASS_WORD}"


def default_folder() -> Path:
    """``samples/lora-subject`` inside the installed package."""
    import lucidkit.samples

    return Path(lucidkit.samples.__file__).resolve().parent / "lora-subject"


def write_samples(folder: str | Path, n: int = 6, seed: int = 0) -> list[Path]:
    """Render `n` views of SUBJECT (random `generate` cameras from `seed`, white background) as 64² PNGs."""
    from lucidkit.export import write_png
    from lucidkit.toyworld.data import render_object, sample_cameras

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cameras = sample_cameras(n, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        images = render_object(SUBJECT, cameras)  # [n, 64, 64, 3] on white
    return [write_png(folder / f"view_{i:02d}.png", img) for i, img in enumerate(images)]


def match_rate(images: torch.Tensor, evaluator=None) -> float:
    """Share of images [B, H, W, 3] the toy evaluator reads as SUBJECT (shape, both colours and pattern)."""
    from lucidkit.toyworld.evaluator import ToyEvaluator

    evaluator = evaluator or ToyEvaluator.load()
    return evaluator.prompt_accuracy(images, SUBJECT.prompt)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lucidkit.toyworld.lora_subject", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(default_folder()))
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in write_samples(args.out, args.n, args.seed):
        print(path)


if __name__ == "__main__":
    main()
