"""2D image editing with the score distillation objective: the engine behind `lucidkit edit-image`.

image file → canvas at the prior's resolution (resize + pad, aspect kept) → latents z (or pixels) →
Adam on z with the shared guidance step (`ScoreDistillation.latent_loss`: ISM from the source toward the target
prompt; SDS and DDS as baselines) → decode → back to the original size → outside the mask, the input's pixels.

The 3D loop (`optimize.py`) optimises Gaussians through a renderer; here the parameters are the image itself, so
the loop is the few lines of `edit_image` — the guidance step is the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from lucidkit import config as config_lib
from lucidkit.errors import UserError
from lucidkit.guidance import GuidanceConfig, ScoreDistillation
from lucidkit.prior.config import PriorConfig, load_prior


@dataclass
class ImageEditOptions:
    """How the image is optimised."""

    steps: int = 500
    """Number of updates."""
    optimizer: str = "sgd"
    """'sgd' (steps follow the guidance gradient, so regions the prompts agree on barely move) or 'adam'."""
    lr: float = 0.05
    """Learning rate (for 'adam': the step size in latent units for 'latent', pixel units for 'pixel')."""
    batch_size: int = 1
    """Noise samples per update (the gradients of the copies are summed)."""
    parameterization: str = "latent"
    """'latent' (optimise the VAE latents; fast) or 'pixel' (optimise pixels through the VAE encoder)."""
    anchor: float = 0.0
    """Weight of 0.5·Σ(z − z_input)² that holds the latents near the input's (0 = none)."""
    auto_mask: float = 0.0
    """Edit only where the prompts disagree (DiffEdit's mask): latents whose normalised disagreement
    (`ScoreDistillation.prompt_disagreement`) is below this threshold stay at the input; 0 = off, 0.5 is DiffEdit's
    threshold. Combined with --mask when both are given. Only with a source prompt (there is nothing to compare
    without one): without it the whole image may change."""
    frames: int = 8
    """Frames in the progress strip (evenly spaced updates, plus the input first)."""


@dataclass
class EditImageConfig:
    """Everything `lucidkit edit-image` does, as one config (presets/edit-image/*.yaml)."""

    prompt: str = ""
    """The target prompt: what the edited image should show."""
    source_prompt: str = ""
    """What the input shows (the inversion prompt of ISM, the source score of DDS); '' = the empty prompt."""
    seed: int = 0
    """Seed of every random choice in the run."""
    prior: PriorConfig = field(default_factory=PriorConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    edit: ImageEditOptions = field(default_factory=ImageEditOptions)


def resolve_config(preset: str | None, overrides: dict) -> EditImageConfig:
    """Preset + overrides → EditImageConfig (without a preset: 'toy' for the toy prior, else 'default')."""
    return config_lib.resolve_preset(EditImageConfig, "edit-image", preset, overrides)


@dataclass
class EditImageResult:
    image: torch.Tensor  # [H, W, 3] in [0, 1], the input's size
    frames: list  # [size, size, 3] canvases: the input, then progress
    seconds: float
    steps: int
    mask_share: float | None = None  # share of the canvas the automatic mask let change (None: no automatic mask)


def edit_image(prior, image: torch.Tensor, cfg: EditImageConfig, mask: torch.Tensor | None = None,
               progress=None) -> EditImageResult:
    """Edit `image` [H, W, 3] in [0, 1] toward `cfg.prompt`; `mask` [H, W] bool (True = may change).

    Outside the mask the result is the input, pixel for pixel. `progress(state, logs)` is called after every
    update (a `runs.Progress`).
    """
    from lucidkit.images import from_canvas, place, to_canvas
    from lucidkit.runs import Timer

    if not cfg.prompt.strip():
        raise UserError('the target prompt is empty; say what the image should show, e.g. --prompt "a blue cube"')
    opts = cfg.edit
    if opts.parameterization not in ("latent", "pixel"):
        raise UserError(f"edit.parameterization must be 'latent' or 'pixel', got {opts.parameterization!r}")
    timer = Timer()
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    guidance = ScoreDistillation(prior, cfg.prompt, cfg.guidance, source_prompt=cfg.source_prompt)
    placement = place(image.shape[0], image.shape[1], prior.resolution)
    canvas = to_canvas(image, placement).to(prior.device)[None]  # [1, 3, S, S]
    with torch.no_grad():
        z_input = prior.encode_images(canvas, generator=generator)  # [1, C, h, w]
    latent = opts.parameterization == "latent"
    start = z_input if latent else canvas  # [1, C, h, w] or [1, 3, S, S]
    keep = None  # [1, 1, h, w] or [1, 1, S, S]: 1 where the edit may change the parameters
    if mask is not None:
        keep = to_canvas(mask[..., None].float(), placement, fill=0.0)[None].to(start)  # [1, 1, S, S]
        if latent:  # a latent may change when any of its pixels may
            keep = F.adaptive_max_pool2d(keep, z_input.shape[-1])
    mask_share, auto_pixels = None, None  # the automatic mask: share of latents it lets change, [1, 1, S, S]
    if opts.auto_mask and cfg.source_prompt.strip():
        disagree = guidance.prompt_disagreement(z_input, generator)  # [1, 1, h, w]
        auto = (disagree >= opts.auto_mask).float()
        # one latent of margin: an edit that changes the object's colour also changes its anti-aliased edge
        auto = F.max_pool2d(auto, 3, stride=1, padding=1)
        mask_share = float(auto.mean())
        auto_pixels = F.interpolate(auto, size=canvas.shape[-2:], mode="nearest")  # [1, 1, S, S]
        keep_auto = auto if latent else auto_pixels
        keep = keep_auto if keep is None else keep * keep_auto

    B = opts.batch_size
    azimuth = torch.zeros(B)  # images have no camera: with view prompts off, the azimuth is unused
    param = start.clone().requires_grad_(True)
    if opts.optimizer not in ("sgd", "adam"):
        raise UserError(f"edit.optimizer must be 'sgd' or 'adam', got {opts.optimizer!r}")
    optimizer = (torch.optim.SGD if opts.optimizer == "sgd" else torch.optim.Adam)([param], lr=opts.lr)

    def current():
        """The latents (or the image) being edited, with everything outside the mask held at the input."""
        x = param if latent else param.clamp(0, 1)
        return x if keep is None else keep * x + (1 - keep) * start

    def current_image():
        with torch.no_grad():
            return (prior.decode_latents(current()) if latent else current())[0]  # [3, S, S]

    frame_at = {round(opts.steps * (i + 1) / max(opts.frames - 1, 1)) for i in range(max(opts.frames - 1, 0))}
    frames = [canvas[0].permute(1, 2, 0).cpu()]
    state = SimpleNamespace(step=0)
    for step in range(opts.steps):
        x = current()
        if latent:
            z = x  # [1, C, h, w]
            loss, logs = guidance.latent_loss(z.expand(B, -1, -1, -1), azimuth, step, generator,
                                              reference_latents=z_input.expand(B, -1, -1, -1))
        else:
            loss, logs = guidance.loss(x.expand(B, -1, -1, -1), azimuth, step, generator,
                                       reference=canvas.expand(B, -1, -1, -1))
        if opts.anchor:  # the pixel path re-encodes: the anchor always acts on latents
            z_now = z if latent else prior.encode_images(x, generator=generator)
            loss = loss + opts.anchor * 0.5 * ((z_now - z_input) ** 2).sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state.step = step + 1
        if progress is not None:
            progress(state, {"loss": loss.detach(), **logs})
        if state.step in frame_at:
            frames.append(current_image().permute(1, 2, 0).cpu())

    edited = from_canvas(current_image().cpu(), placement)  # [H, W, 3] at the input's size
    if auto_pixels is not None:  # what the mask held is the input itself, not its trip through the VAE
        weight = from_canvas(auto_pixels[0].cpu(), placement).clamp(0, 1)  # [H, W, 1]
        edited = weight * edited + (1 - weight) * image
    if mask is not None:
        edited = torch.where(mask[..., None], edited, image)  # outside the mask: the input, pixel for pixel
    return EditImageResult(image=edited, frames=frames, seconds=timer.elapsed(), steps=opts.steps,
                           mask_share=mask_share)


def progress_strip(frames: list[torch.Tensor]) -> torch.Tensor:
    """Frames [S, S, 3] side by side → [S, n·S, 3]."""
    return torch.cat(frames, dim=1)


def output_paths(out: Path) -> dict[str, Path]:
    """The files one edit writes: the image, its progress strip and its manifest, side by side."""
    stem = out.with_suffix("")
    return {"image": out, "progress": Path(f"{stem}.progress.png"), "manifest": Path(f"{stem}.json")}


def run(cfg: EditImageConfig, input_path: Path, out: Path, mask_path: Path | None = None, overwrite: bool = False,
        quiet: bool = False, announce=lambda message: None) -> dict:
    """Read, edit and write: `out` (the edited image), `<out>.progress.png`, `<out>.json` (manifest)."""
    from lucidkit import export, runs
    from lucidkit.images import read_image, read_mask

    if not cfg.prompt.strip():
        raise UserError('the target prompt is empty; say what the image should show, e.g. --prompt "a blue cube"')
    paths = output_paths(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out} must end in .png (the edited image is written losslessly)")
    if out.resolve() == Path(input_path).resolve():
        raise UserError(f"--out {out} is the input image; lucidkit never overwrites its input, choose another path")
    if not overwrite:
        taken = [p for p in paths.values() if p.exists()]
        if taken:
            raise UserError(f"{taken[0]} already exists; pass --overwrite or choose another --out")
    export.check_writable_dir(out.parent)
    image = read_image(input_path)  # [H, W, 3]
    mask = None if mask_path is None else read_mask(mask_path, tuple(image.shape[:2]))
    prior = load_prior(cfg.prior)
    announce(f"Editing {input_path} ({image.shape[1]}x{image.shape[0]}) with {cfg.guidance.method} on prior "
             f"{cfg.prior.model!r} ({prior.device}), {cfg.edit.steps} updates")
    with runs.Progress(cfg.edit.steps, 0, "edit-image", quiet=quiet) as progress:
        result = edit_image(prior, image, cfg, mask, progress=progress)
    export.write_png(paths["image"], result.image)
    export.write_png(paths["progress"], progress_strip(result.frames))
    manifest = {
        **runs.manifest_header("edit-image", cfg.seed, prior),
        "input": str(input_path),
        "mask": None if mask_path is None else str(mask_path),
        "prompt": cfg.prompt,
        "source_prompt": cfg.source_prompt,
        "method": cfg.guidance.method,
        "steps": result.steps,
        "auto_mask_share": result.mask_share,
        "size": [int(image.shape[1]), int(image.shape[0])],
        "seconds": result.seconds,
        "config": config_lib.to_dict(cfg),
        "outputs": [p.name for p in paths.values()],
        "versions": export.package_versions(),
    }
    export.write_json(paths["manifest"], manifest)
    return {"paths": paths, "seconds": result.seconds, "steps": result.steps}
