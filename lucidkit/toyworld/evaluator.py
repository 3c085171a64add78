"""The toy evaluator: a small CNN that reads shape, colours, pattern and view off a 64x64 image.

Trained on ground-truth renders of the toy world (random recipe backgrounds, cameras of `generate`), it gives
benchmarks two numbers no random model can:
- **prompt accuracy** (a toy "CLIP R-precision"): the share of images whose predicted shape, colour(s) and pattern
  all match what the prompt says;
- **view consistency**: for oriented objects (house, penguin), the share of images whose predicted view
  (front/side/back) matches the camera's azimuth; a back camera that sees a front is a multi-face (Janus) failure.

Heads (label sets in `LABELS`): ``shape`` (8, every image), ``colour`` (6, the first colour; not for oriented
objects), ``colour2`` (7, the second colour of a pattern), ``pattern`` (plain/striped/checkered; not for oriented
objects), ``view`` (front/side/back; oriented objects only — on other objects its output means nothing).

Shipped in ``samples/toy-evaluator/`` as ``model.safetensors`` + ``config.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lucidkit.errors import UserError
from lucidkit.export import publish, staging_folder
from lucidkit.toyworld.captions import VIEWS, parse_prompt, views_of_azimuths
from lucidkit.toyworld.objects import ALL_SHAPES, COLOURS, PATTERN_COLOURS, PATTERNS, ToyObject

RESOLUTION = 64
LABELS: dict[str, tuple[str, ...]] = {
    "shape": ALL_SHAPES,
    "colour": tuple(COLOURS),
    "colour2": tuple(PATTERN_COLOURS),
    "pattern": PATTERNS,
    "view": VIEWS,
}
IGNORE = -100  # label of a head that does not apply to an image (cross-entropy ignore_index)


def default_path() -> Path:
    """``samples/toy-evaluator`` inside the installed package."""
    import lucidkit.samples

    return Path(lucidkit.samples.__file__).resolve().parent / "toy-evaluator"


class EvaluatorNet(nn.Module):
    """Conv net: four stride-2 stages (64 -> 4 px) of GroupNorm + SiLU convolutions, global average pooling, one
    linear head per attribute. Input [B, 3, 64, 64] in [0, 1]; output dict of logits [B, n_labels]."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 192)):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1)]
        channels = widths[0]
        for width in widths:
            layers += [
                nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, width, 3, padding=1),
                nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, width, 3, stride=2, padding=1),
            ]
            channels = width
        layers += [nn.GroupNorm(8, channels), nn.SiLU()]
        self.features = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({name: nn.Linear(channels, len(labels)) for name, labels in LABELS.items()})
        self.widths = tuple(widths)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x = self.features(images * 2 - 1)  # [B, C, 4, 4]
        x = x.mean(dim=(2, 3))  # [B, C]
        return {name: head(x) for name, head in self.heads.items()}


def targets_of(objects: Sequence[ToyObject], object_index: Tensor, azimuth_deg: Tensor) -> dict[str, Tensor]:
    """Training labels [B] per head for pool entries (object_index [B], azimuth_deg [B]); IGNORE where a head does
    not apply (colour/pattern on oriented objects, colour2 on plain ones, view on non-oriented ones)."""
    table = torch.full((len(objects), 4), IGNORE, dtype=torch.long)  # shape, colour, colour2, pattern per object
    oriented = torch.zeros(len(objects), dtype=torch.bool)
    for i, obj in enumerate(objects):
        table[i, 0] = LABELS["shape"].index(obj.shape)
        oriented[i] = obj.oriented
        if not obj.oriented:
            table[i, 1] = LABELS["colour"].index(obj.colour)
            table[i, 3] = LABELS["pattern"].index(obj.pattern)
            if obj.pattern != "plain":
                table[i, 2] = LABELS["colour2"].index(obj.colour2)
    idx = object_index.cpu()
    rows = table[idx]  # [B, 4]
    view = torch.where(oriented[idx], views_of_azimuths(azimuth_deg.cpu()), IGNORE)
    out = {"shape": rows[:, 0], "colour": rows[:, 1], "colour2": rows[:, 2], "pattern": rows[:, 3], "view": view}
    return {k: v.to(object_index.device) for k, v in out.items()}


def to_model_input(images: Tensor) -> Tensor:
    """[B, H, W, 3] (channels-last, [0, 1]) -> [B, 3, 64, 64], resized with antialiasing when needed."""
    if images.dim() != 4 or images.shape[-1] != 3:
        raise UserError(f"evaluator images must be [B, H, W, 3] in [0, 1], got shape {list(images.shape)}")
    x = images.permute(0, 3, 1, 2).float().clamp(0, 1)  # [B, 3, H, W]
    if x.shape[-2:] != (RESOLUTION, RESOLUTION):
        x = F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode="bilinear", antialias=True, align_corners=False)
    return x


class ToyEvaluator:
    """A trained `EvaluatorNet` with the label names; see the module doc."""

    def __init__(self, net: EvaluatorNet, device: str | torch.device = "cpu"):
        self.net = net.eval().to(device)
        self.device = torch.device(device)

    @classmethod
    def load(cls, path: Optional[str | Path] = None, device: str | torch.device = "cpu") -> "ToyEvaluator":
        """Load from a folder with ``config.json`` + ``model.safetensors`` (default: the shipped evaluator)."""
        from safetensors.torch import load_file

        folder = Path(path) if path is not None else default_path()
        config_path, weights_path = folder / "config.json", folder / "model.safetensors"
        if not config_path.is_file() or not weights_path.is_file():
            raise UserError(f"toy evaluator folder {folder} must hold config.json and model.safetensors")
        config = json.loads(config_path.read_text())
        if {k: tuple(v) for k, v in config["labels"].items()} != LABELS:
            raise UserError(f"toy evaluator in {folder} was trained for other labels than this lucidkit's toy world")
        net = EvaluatorNet(config["widths"])
        state = {k: v.float() for k, v in load_file(str(weights_path)).items()}
        net.load_state_dict(state)
        return cls(net, device)

    def save(self, folder: str | Path, extra: Optional[dict] = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (fp16) into ``folder`` atomically (temp folder + rename)."""
        from safetensors.torch import save_file

        tmp = staging_folder(folder)
        state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        config = {
            "widths": list(self.net.widths),
            "resolution": RESOLUTION,
            "labels": {k: list(v) for k, v in LABELS.items()},
        }
        config.update(extra or {})
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        return publish(tmp, folder)

    @torch.no_grad()
    def probabilities(self, images: Tensor, batch_size: int = 256) -> dict[str, Tensor]:
        """Per-head class probabilities [B, n_labels] (CPU float) for images [B, H, W, 3] in [0, 1]."""
        x = to_model_input(images)
        chunks: dict[str, list[Tensor]] = {name: [] for name in LABELS}
        for start in range(0, x.shape[0], batch_size):
            logits = self.net(x[start : start + batch_size].to(self.device))
            for name, value in logits.items():
                chunks[name].append(value.float().softmax(-1).cpu())
        return {name: torch.cat(parts) for name, parts in chunks.items()}

    def predict(self, images: Tensor) -> dict[str, object]:
        """Predicted labels for images [B, H, W, 3] in [0, 1]: ``{head: list[str]}`` for every head of `LABELS`,
        plus ``{head + "_probs": Tensor [B, n_labels]}``."""
        probs = self.probabilities(images)
        out: dict[str, object] = {}
        for name, p in probs.items():
            out[name] = [LABELS[name][i] for i in p.argmax(-1).tolist()]
            out[name + "_probs"] = p
        return out

    def matches(self, images: Tensor, prompt: str) -> Tensor:
        """[B] bool: the image shows what ``prompt`` names (shape; colour, pattern and second colour where the
        prompt says them). The prompt's view is not checked here (see `view_consistency`)."""
        attrs = parse_prompt(prompt)
        if attrs.shape is None:
            raise UserError(f"prompt {prompt!r} names no toy-world shape; expected one of {', '.join(ALL_SHAPES)}")
        pred = self.predict(images)
        ok = torch.tensor([s == attrs.shape for s in pred["shape"]])
        if not attrs.oriented:
            for head in ("colour", "pattern", "colour2"):
                want = getattr(attrs, head)
                if want is not None:
                    ok &= torch.tensor([p == want for p in pred[head]])
        return ok

    def prompt_accuracy(self, images: Tensor, prompt: str) -> float:
        """Share of images [B, H, W, 3] whose predicted shape, colour(s) and pattern all match ``prompt``."""
        return float(self.matches(images, prompt).float().mean())

    def view_consistency(self, images: Tensor, azimuth_deg: Tensor | Sequence[float], prompt: str) -> float:
        """Share of images whose predicted view matches their camera's azimuth (|a| <= 45 front, >= 135 back, else
        side). NaN when the prompt's object has no front (only house and penguin are oriented)."""
        if not parse_prompt(prompt).oriented:
            return float("nan")
        expected = views_of_azimuths(torch.as_tensor(azimuth_deg, dtype=torch.float32))
        predicted = self.probabilities(images)["view"].argmax(-1)
        return float((predicted == expected).float().mean())

    def multi_face_rate(self, images: Tensor, azimuth_deg: Tensor | Sequence[float], prompt: str) -> float:
        """Share of back cameras (|a| >= 135) whose image is predicted to show the front: the Janus failure.
        NaN when the object has no front or no camera is behind it."""
        azimuth = torch.as_tensor(azimuth_deg, dtype=torch.float32)
        back = views_of_azimuths(azimuth) == VIEWS.index("back")
        if not parse_prompt(prompt).oriented or not bool(back.any()):
            return float("nan")
        predicted = self.probabilities(images[back])["view"].argmax(-1)
        return float((predicted == VIEWS.index("front")).float().mean())


# --------------------------------------------------------------------------------------------------------------------
# Training (used by `python -m tools.toyworld.train`)
# --------------------------------------------------------------------------------------------------------------------


def augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mild, label-preserving augmentation of [B, 3, H, W] images in [0, 1]: random horizontal flip, shift and
    zoom (+-8%), a light blur on a third of the images, and a little pixel noise."""
    b, _, h, w = images.shape
    device = images.device
    flip = torch.rand(b, generator=generator) < 0.5
    images = torch.where(flip.to(device)[:, None, None, None], images.flip(-1), images)
    zoom = 1 + (torch.rand(b, generator=generator) - 0.5) * 0.16  # [B]
    shift = (torch.rand(b, 2, generator=generator) - 0.5) * 0.16  # [B, 2] in normalised coordinates
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = 1 / zoom
    theta[:, 1, 1] = 1 / zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(device), list(images.shape), align_corners=False)
    # Pad with the border colour: the background continues past the edge.
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    blur = torch.rand(b, generator=generator) < 0.33
    kernel = torch.tensor([0.25, 0.5, 0.25], device=device)
    kernel = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    images = torch.where(blur.to(device)[:, None, None, None], blurred, images)
    noise = torch.randn_like(images) * 0.02  # drawn on the images' device (global generator)
    return (images + noise).clamp(0, 1)


def loss_and_accuracy(logits: dict[str, Tensor], targets: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """Summed cross-entropy over heads (ignoring IGNORE labels) and per-head accuracy on the labelled images."""
    total = 0.0
    accuracy = {}
    for name, target in targets.items():
        valid = target != IGNORE
        if bool(valid.any()):
            total = total + F.cross_entropy(logits[name].float(), target, ignore_index=IGNORE)
            accuracy[name] = float((logits[name].argmax(-1)[valid] == target[valid]).float().mean())
    return total, accuracy


@torch.no_grad()
def heldout_accuracy(
    evaluator: ToyEvaluator, images: Tensor, objects: Sequence[ToyObject], object_index: Tensor, azimuth_deg: Tensor
) -> dict[str, float]:
    """Per-head accuracy on labelled images [B, H, W, 3] (ground truth), plus ``all`` (every applicable head right)."""
    targets = targets_of(objects, object_index.cpu(), azimuth_deg.cpu())
    probs = evaluator.probabilities(images)
    result = {}
    all_ok = torch.ones(images.shape[0], dtype=torch.bool)
    for name, target in targets.items():
        valid = target != IGNORE
        right = probs[name].argmax(-1) == target
        all_ok &= right | ~valid
        result[name] = float(right[valid].float().mean()) if bool(valid.any()) else math.nan
    result["all"] = float(all_ok.float().mean())
    return result
