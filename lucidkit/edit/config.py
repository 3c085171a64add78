"""The configuration of `lucidkit edit` (presets/edit/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lucidkit import config as config_lib
from lucidkit.scene_run import SceneRunConfig


@dataclass
class SceneConfig:
    """The scene to edit and how to place it in the engine's frame."""

    path: str = ""
    """The input .ply (INRIA 3DGS layout). It is only read, never written."""
    up: str = "z"
    """The file's up axis: z, -z, y, -y, x or -x (y: OpenGL-style exports; -y: COLMAP/OpenCV captures)."""
    cameras: str | None = None
    """Training cameras: an INRIA cameras.json or a nerfstudio transforms.json in the .ply's frame (default: an orbit
    fitted to the scene's robust bounds)."""
    region: str | None = None
    """Only Gaussians inside change: 'box:x0,y0,z0,x1,y1,z1' or 'sphere:x,y,z,r' in the file's coordinates."""
    fit_radius: float = 0.58
    """Radius (engine units) the scene's robust radius is scaled to; the recipe's cameras frame a ball of ~0.6."""
    bounds_percentile: float = 2.0
    """Robust bounds ignore this share (%) of the opacity-weighted Gaussians at each end (floaters)."""


@dataclass
class AnchorConfig:
    """Holds editable Gaussians near their original values: strength × Σ weight × mean squared raw difference."""

    strength: float = 1.0
    """Overall strength of the anchor (0 = none; larger = smaller changes)."""
    means: float = 1.0
    """Weight of the positions (engine units: the scene's robust radius is `scene.fit_radius`)."""
    scales: float = 1.0
    """Weight of the log-scales."""
    colors: float = 1.0
    """Weight of the base colour (sh0). Lower it for colour and material edits."""
    opacities: float = 1.0
    """Weight of the opacity logits."""


@dataclass
class EditConfig(SceneRunConfig):
    """Everything `lucidkit edit` does, as one config (presets/edit/*.yaml)."""

    prompt: str = ""
    """The target prompt: what the scene should show after the edit."""
    source_prompt: str | None = None
    """What the scene shows now (optional): ISM inverts with it, DDS subtracts its score."""
    scene: SceneConfig = field(default_factory=SceneConfig)
    anchor: AnchorConfig = field(default_factory=AnchorConfig)


def resolve_config(preset: str | None, overrides: dict) -> EditConfig:
    """Preset + overrides → EditConfig (without a preset: 'toy' for the toy prior, else 'default')."""
    return config_lib.resolve_preset(EditConfig, "edit", preset, overrides)
