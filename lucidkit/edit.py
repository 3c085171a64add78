"""Text-guided editing of an existing 3D Gaussian scene: the engine function behind `lucidkit edit`.

scene.ply (INRIA layout, SH degree 0-3, any up axis) → the engine frame (z-up, centred, scaled to the orbit)
→ the shared loop (`optimize.py`): renders of the *current* scene are pulled toward the target prompt by ISM
(or SDS / DDS), Gaussians outside `--region` are frozen, an anchor holds the others near their original values,
densification grows Gaussians only where the guidance pushes → scene.ply in the input's frame and SH degree,
preview.png (before / after), before_after.mp4, manifest.json.

Frames. The file's frame maps to the engine's by one similarity, x_engine = scale * (R @ x_file - center):
R turns the file's up axis (`--up`) into +z (a signed permutation, so positions rotate exactly); the centre
and scale fit the scene's robust bounds (`camera_files.robust_bounds`) to the recipe's orbit, so the default
cameras frame the scene as they frame a generated object. Log-scales shift by log(scale), quaternions rotate
with R, and the higher SH coefficients (degree >= 1) are rotated with R too (an exact linear map per degree,
`sh_rotation`), so view-dependent colour stays right in both frames. On output every Gaussian goes back
through the inverse map, except the frozen ones, which are copied from the input file: they are bit-identical.

Anchor (after GaussianEditor's anchor loss, without its generations): strength × Σ over (means, log-scales,
sh0, opacity logits) of weight × the mean squared difference between each editable Gaussian's raw values (in
the engine frame) and the original values of the input Gaussian it descends from. gsplat's densification ops
carry an `anchor_index` per Gaussian in the strategy state, so a clone or split child anchors to its parent's
original; split children start 1.6× smaller than that, and the anchor pulls them back gently — which keeps an
edit from re-shaping more of the scene than the guidance asks for. Frozen Gaussians are excluded (they cannot move).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from lucidkit import config as config_lib
from lucidkit.camera_files import (CameraSet, CameraSetSampler, check_cameras_see, read_camera_file,
                                   robust_bounds)
from lucidkit.cameras import CameraConfig, OrbitSampler, eval_ring, turntable
from lucidkit.errors import UserError
from lucidkit.generate import OutputConfig, PriorConfig, RunResult, load_prior
from lucidkit.guidance import GuidanceConfig, ScoreDistillation
from lucidkit.optimize import (LoopConfig, TrainState, load_checkpoint, new_state, optimize, render_state,
                               save_checkpoint)
from lucidkit.splat.densify import DensifyConfig, make_strategy
from lucidkit.splat.scene import OptimConfig, PlyError, PlyScene, read_ply, sh_degree_of

# File axes → engine axes for each `--up`: rows are the engine's x, y, z axes in file coordinates (proper rotations).
UP_ROTATIONS = {
    "z": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "-z": ((1, 0, 0), (0, -1, 0), (0, 0, -1)),
    "y": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),  # file +y → +z, file +z → -y (OpenGL / Blender-export style)
    "-y": ((1, 0, 0), (0, 0, 1), (0, -1, 0)),  # file -y → +z, file +z → +y (COLMAP / OpenCV captures)
    "x": ((0, 0, -1), (0, 1, 0), (1, 0, 0)),
    "-x": ((0, 0, 1), (0, 1, 0), (-1, 0, 0)),
}


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
class EditConfig:
    """Everything `lucidkit edit` does, as one config (presets/edit/*.yaml)."""

    prompt: str = ""
    """The target prompt: what the scene should show after the edit."""
    source_prompt: str | None = None
    """What the scene shows now (optional): ISM inverts with it, DDS subtracts its score."""
    seed: int = 0
    """Seed of every random choice in the run."""
    scene: SceneConfig = field(default_factory=SceneConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


def resolve_config(preset: str | None, overrides: dict) -> EditConfig:
    """Preset + overrides → EditConfig (without a preset: 'toy' for the toy prior, else 'default')."""
    return config_lib.resolve_preset(EditConfig, "edit", preset, overrides)

# ---------------------------------------------------------------------------------------------------------------
# Regions
# ---------------------------------------------------------------------------------------------------------------


class RegionError(UserError):
    """A --region that cannot be parsed or selects nothing."""


@dataclass(frozen=True)
class Region:
    """A part of space in the file's coordinates: a box (lo, hi corners) or a sphere (centre, radius)."""

    kind: str  # "box" or "sphere"
    values: tuple[float, ...]  # box: x0, y0, z0, x1, y1, z1; sphere: x, y, z, r
    text: str

    def contains(self, points: Tensor) -> Tensor:
        """[N] bool: which of `points` [N, 3] lie inside (boundary included)."""
        v = torch.tensor(self.values, dtype=torch.float64)
        p = points.detach().to(torch.float64)
        if self.kind == "box":
            lo, hi = torch.minimum(v[:3], v[3:]), torch.maximum(v[:3], v[3:])
            return ((p >= lo) & (p <= hi)).all(dim=1)
        return (p - v[:3]).norm(dim=1) <= v[3]


def parse_region(text: str) -> Region:
    """'box:x0,y0,z0,x1,y1,z1' (any two opposite corners) or 'sphere:x,y,z,r' → Region; RegionError otherwise."""
    expected = "expected 'box:x0,y0,z0,x1,y1,z1' or 'sphere:x,y,z,r' (numbers in the .ply's coordinates)"
    match = re.fullmatch(r"\s*(box|sphere)\s*:(.*)", text or "")
    if match is None:
        raise RegionError(f"--region {text!r}: {expected}")
    kind, body = match.group(1), match.group(2)
    try:
        values = tuple(float(x) for x in body.split(","))
    except ValueError:
        raise RegionError(f"--region {text!r}: {expected}") from None
    if len(values) != (6 if kind == "box" else 4) or not all(map(lambda x: abs(x) < float("inf"), values)):
        raise RegionError(f"--region {text!r}: {expected}")
    if kind == "sphere" and values[3] <= 0:
        raise RegionError(f"--region {text!r}: the sphere's radius must be positive")
    return Region(kind, values, text.strip())


# ---------------------------------------------------------------------------------------------------------------
# Frames: file ↔ engine (functional core)
# ---------------------------------------------------------------------------------------------------------------


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a ⊗ b of wxyz quaternions [..., 4] (rotation b, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)


def rotation_to_quat(rotation: Tensor) -> Tensor:
    """Unit wxyz quaternion [4] of a proper rotation matrix [3, 3] (Shepperd's method: stable for any angle)."""
    m = rotation.to(torch.float64)
    trace = m.trace()
    candidates = torch.stack([trace, m[0, 0], m[1, 1], m[2, 2]])
    i = int(candidates.argmax())
    if i == 0:
        w = torch.sqrt(1 + trace) / 2
        q = [w, (m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w), (m[1, 0] - m[0, 1]) / (4 * w)]
    elif i == 1:
        x = torch.sqrt(1 + m[0, 0] - m[1, 1] - m[2, 2]) / 2
        q = [(m[2, 1] - m[1, 2]) / (4 * x), x, (m[0, 1] + m[1, 0]) / (4 * x), (m[0, 2] + m[2, 0]) / (4 * x)]
    elif i == 2:
        y = torch.sqrt(1 - m[0, 0] + m[1, 1] - m[2, 2]) / 2
        q = [(m[0, 2] - m[2, 0]) / (4 * y), (m[0, 1] + m[1, 0]) / (4 * y), y, (m[1, 2] + m[2, 1]) / (4 * y)]
    else:
        z = torch.sqrt(1 - m[0, 0] - m[1, 1] + m[2, 2]) / 2
        q = [(m[1, 0] - m[0, 1]) / (4 * z), (m[0, 2] + m[2, 0]) / (4 * z), (m[1, 2] + m[2, 1]) / (4 * z), z]
    return torch.stack(q)


def sh_rotation(rotation: Tensor, degree: int) -> Tensor:
    """[K-1, K-1] float64 map of the higher SH coefficients (degrees 1..degree, K = (degree+1)^2) under a rotation
    of the world: coefficients c describe colour(d); `sh_rotation(R) @ c` describes colour(R^T d), the same colour
    seen in the rotated frame. Solved by least squares on the renderer's own SH basis (exact up to rounding)."""
    from gsplat.cuda._torch_impl import _eval_sh_bases_fast  # the basis the renderer evaluates

    k = (degree + 1) ** 2
    if degree == 0:
        return torch.zeros(0, 0, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(256, 3, generator=g, dtype=torch.float64), dim=-1)  # [M, 3]
    basis = _eval_sh_bases_fast(k, dirs)  # [M, K]: Y_j(d)
    rotated = _eval_sh_bases_fast(k, dirs @ rotation.to(torch.float64))  # [M, K]: Y_k(R^T d)
    solution = torch.linalg.lstsq(basis, rotated).solution  # [K, K]: basis @ M = rotated
    solution[solution.abs() < 1e-12] = 0.0
    return solution[1:, 1:]  # degree 0 is invariant


@dataclass
class SceneFrame:
    """The similarity from the file's frame to the engine's: x_engine = scale * (rotation @ x_file - center)."""

    up: str
    rotation: Tensor  # [3, 3] float64, a proper rotation (signed permutation)
    center: Tensor  # [3] float64: the robust centre, in the rotated (z-up) file units
    scale: float  # engine units per file unit

    @classmethod
    def fit(cls, splats: dict, up: str, fit_radius: float, percentile: float) -> "SceneFrame":
        """Rotate `up` to +z, then centre and scale the robust bounds of the Gaussians `splats` (raw parameters in
        the file's frame) to a ball of `fit_radius`."""
        if up not in UP_ROTATIONS:
            raise UserError(f"--up {up!r}: expected one of {', '.join(UP_ROTATIONS)}")
        rotation = torch.tensor(UP_ROTATIONS[up], dtype=torch.float64)
        means = splats["means"].detach().to(torch.float64) @ rotation.T  # [N, 3]
        center, radius = robust_bounds(means, torch.sigmoid(splats["opacities"].detach()), percentile)
        return cls(up, rotation, center, fit_radius / radius)

    def to_engine(self, params: dict) -> dict[str, Tensor]:
        """Raw Gaussian parameters (gsplat layout) from the file's frame to the engine's (new float32 tensors)."""
        rot, dev = self.rotation, params["means"].device
        q_rot = rotation_to_quat(rot).to(dev)
        sh = sh_rotation(rot, sh_degree_of(params)).to(dev)  # [K-1, K-1]
        means = (params["means"].detach().double() @ rot.T.to(dev) - self.center.to(dev)) * self.scale  # [N, 3]
        return {
            "means": means.float(),
            "scales": (params["scales"].detach().double() + math.log(self.scale)).float(),
            "quats": quat_multiply(q_rot, params["quats"].detach().double()).float(),
            "opacities": params["opacities"].detach().clone(),
            "sh0": params["sh0"].detach().clone(),
            "shN": torch.einsum("jk,nkc->njc", sh, params["shN"].detach().double()).float(),
        }

    def to_file(self, params: dict) -> dict[str, Tensor]:
        """The inverse of `to_engine` (CPU float32 tensors)."""
        rot = self.rotation
        q_inv = rotation_to_quat(rot) * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
        sh = sh_rotation(rot, sh_degree_of(params))  # orthogonal: its inverse is its transpose
        p = {k: v.detach().cpu() for k, v in params.items()}
        return {
            "means": ((p["means"].double() / self.scale + self.center) @ rot).float(),
            "scales": (p["scales"].double() - math.log(self.scale)).float(),
            "quats": quat_multiply(q_inv, p["quats"].double()).float(),
            "opacities": p["opacities"].clone(),
            "sh0": p["sh0"].clone(),
            "shN": torch.einsum("kj,nkc->njc", sh, p["shN"].double()).float(),
        }

    def describe(self) -> dict:
        """For the manifest: the up axis and the robust centre (file coordinates) and scale."""
        return {"up": self.up, "center_file": (self.rotation.T @ self.center).tolist(), "scale": self.scale}


# ---------------------------------------------------------------------------------------------------------------
# The input: scene, frame, region, cameras
# ---------------------------------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class EditSource:
    """The scene being edited, as read (file frame), with everything derived from it."""

    scene: PlyScene
    sha256: str
    frame: SceneFrame
    editable: Tensor  # [N] bool: inside the region (all True without one)
    region: Region | None
    cameras: CameraSet | None  # the given cameras in the engine frame, or None (an orbit)

    @property
    def frozen(self) -> Tensor | None:
        """[N] bool mask of the Gaussians that must not change, or None when all may."""
        return None if bool(self.editable.all()) else ~self.editable

    def engine_splats(self, device) -> dict[str, Tensor]:
        return {k: v.to(device) for k, v in self.frame.to_engine(self.scene.splats).items()}

    def file_splats(self, splats, anchor_index: Tensor, frozen: Tensor | None) -> tuple[dict, Tensor | None]:
        """(raw parameters in the file's frame, normals) for the edited Gaussians; frozen rows are the input's own
        values (bit-identical) and every row carries the normals of the input Gaussian it descends from."""
        out = self.frame.to_file(splats)
        index = anchor_index.cpu()
        if frozen is not None:
            rows = frozen.cpu()
            for name, values in self.scene.splats.items():
                out[name][rows] = values.detach()[index[rows]]
        normals = None if self.scene.normals is None else self.scene.normals[index]
        return out, normals


def load_source(cfg: SceneConfig) -> EditSource:
    """Read and check everything about the input before any model loads; raise UserError naming what is wrong."""
    region = parse_region(cfg.region) if cfg.region else None  # a syntax error costs nothing
    if not cfg.path:
        raise UserError("no scene to edit: pass the .ply file, e.g. lucidkit edit scene.ply --prompt \"...\"")
    path = Path(cfg.path)
    scene = read_ply(path)  # PlyError: not a ply, missing fields, NaN, truncated
    if scene.num_gaussians == 0:
        raise PlyError(f"{path}: holds no Gaussians (element vertex 0)")
    editable = torch.ones(scene.num_gaussians, dtype=torch.bool)
    if region is not None:
        editable = region.contains(scene.splats["means"])
        if not bool(editable.any()):
            means = scene.splats["means"].detach()
            lo, hi = means.min(dim=0).values.tolist(), means.max(dim=0).values.tolist()
            raise RegionError(
                f"--region {region.text} contains none of the {scene.num_gaussians} Gaussians of {path} "
                f"(they span {_fmt(lo)} to {_fmt(hi)} in the file's coordinates)")
    frame = SceneFrame.fit(scene.splats, cfg.up, cfg.fit_radius, cfg.bounds_percentile)
    cameras = None
    if cfg.cameras:
        cameras = read_camera_file(cfg.cameras).transformed(frame.rotation, frame.center, frame.scale)
        check_cameras_see(cameras, torch.zeros(3))
    return EditSource(scene, file_sha256(path), frame, editable, region, cameras)


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"


# ---------------------------------------------------------------------------------------------------------------
# The objective
# ---------------------------------------------------------------------------------------------------------------


def anchor_loss(splats, original: dict, index: Tensor, editable: Tensor | None,
                weights: dict[str, float]) -> Tensor:
    """Σ_g weight_g · mean over editable Gaussians of the mean squared difference between their raw values of group
    g and `original[g][index]` (`index` [N]: the input Gaussian each one descends from; `editable` [N] bool or None
    for all)."""
    n = splats["means"].shape[0]
    rows = torch.ones(n, dtype=torch.bool, device=index.device) if editable is None else editable
    count = rows.sum().clamp_min(1)
    total = splats["means"].new_zeros(())
    for name, weight in weights.items():
        if weight:
            diff = (splats[name] - original[name][index]).reshape(n, -1)  # [N, P]
            total = total + weight * (diff.pow(2).mean(dim=1) * rows).sum() / count
    return total


class EditObjective:
    """Guidance on the renders (toward the target prompt) plus the anchor to the original Gaussians."""

    def __init__(self, guidance: ScoreDistillation, cfg: EditConfig, original: dict, state: TrainState):
        self.guidance, self.cfg, self.original, self.state = guidance, cfg, original, state
        a = cfg.anchor
        self.weights = {"means": a.means, "scales": a.scales, "sh0": a.colors, "opacities": a.opacities}

    def __call__(self, out, cams, step, splats):
        images = out.rgb.permute(0, 3, 1, 2)  # [B, 3, H, W]
        extra = {}
        if self.guidance.cfg.method == "dds":  # the input scene at the same views, on the same backgrounds
            with torch.no_grad():
                extra["reference"] = render_state(self.original, cams, out.info["backgrounds"]).rgb.permute(0, 3, 1, 2)
        loss, logs = self.guidance.loss(images, cams.azimuth_deg, step, self.state.generator, **extra)
        if self.cfg.anchor.strength:
            frozen = self.state.frozen
            anchor = self.cfg.anchor.strength * anchor_loss(
                splats, self.original, self.state.strategy_state["anchor_index"],
                None if frozen is None else ~frozen, self.weights)
            loss = loss + anchor
            logs["anchor"] = anchor.detach()
        return loss, logs


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------


def view_cameras(source: EditSource, camera_cfg: CameraConfig, n: int, size: int, polar_deg: float):
    """`n` cameras for previews and videos: a ring around the orbit, or the given cameras along their path."""
    if source.cameras is not None:
        return source.cameras.evenly_spaced(n, size)
    return eval_ring(n, camera_cfg, size, size, polar_deg=polar_deg)


def before_after_grid(before, after, cams):
    """A uint8 image [2H, V*W, 3]: the input's views above the edited scene's (white background)."""
    import numpy as np

    from lucidkit.export import preview_grid
    from lucidkit.runs import render_views

    rows = [preview_grid(render_views(s, cams)[0].numpy(), max_cols=len(cams)) for s in (before, after)]
    return np.concatenate(rows, axis=0)


def run(cfg: EditConfig, folder: Path, resume: bool = False, quiet: bool = False,
        announce=lambda message: None) -> RunResult:
    """Run (or resume) an edit into `folder`, which `runs.prepare_run_dir` has checked.

    The input scene, region and cameras are checked and the prior loads before anything is written, so bad input
    leaves no half-made run folder behind. The input file is only read.
    """
    from lucidkit import export, runs

    if not cfg.prompt.strip():
        raise UserError('the prompt is empty; say what the scene should become, e.g. --prompt "a blue cube"')
    timer = runs.Timer()
    torch.manual_seed(cfg.seed)
    source = load_source(cfg.scene)
    prior = load_prior(cfg.prior)
    load_seconds = timer.elapsed()
    announce(f"Run folder: {folder} ({source.scene.num_gaussians} Gaussians, SH degree {source.scene.sh_degree}, "
             f"{int(source.editable.sum())} editable; prior {cfg.prior.model!r} on {prior.device})")
    source_prompt = cfg.source_prompt.strip() if cfg.source_prompt and cfg.source_prompt.strip() else None
    guidance = ScoreDistillation(prior, cfg.prompt, cfg.guidance, source_prompt=source_prompt)
    if cfg.prior.low_memory:
        prior.offload_text_encoder()
    size = cfg.loop.resolution or prior.resolution
    strategy = make_strategy(cfg.densify, size, size)
    original = source.engine_splats(prior.device)
    if resume:
        state = load_checkpoint(folder, cfg.optim, strategy, prior.device)
        if state.extras.get("input_sha256") != source.sha256:
            raise UserError(f"cannot resume: {cfg.scene.path} changed since the run in {folder} started")
    else:
        export.write_yaml(folder / "config.yaml", config_lib.to_dict(cfg))
        splats = torch.nn.ParameterDict({k: torch.nn.Parameter(v.clone()) for k, v in original.items()})
        state = new_state(splats, cfg.optim, strategy, cfg.seed)
        state.frozen = None if source.frozen is None else source.frozen.to(prior.device)
        # carried by gsplat's clone/split/prune like every per-Gaussian tensor of the strategy state
        state.strategy_state["anchor_index"] = torch.arange(source.scene.num_gaussians, device=prior.device)
        state.extras["input_sha256"] = source.sha256
    start_step = state.step
    objective = EditObjective(guidance, cfg, original, state)
    sampler = (CameraSetSampler(source.cameras, size) if source.cameras is not None
               else OrbitSampler(cfg.camera, size, size))
    view_size = cfg.output.video_resolution or size
    (folder / "previews").mkdir(exist_ok=True)
    preview_cams = view_cameras(source, cfg.camera, 4, view_size, cfg.camera.eval_polar_deg[0])

    progress = runs.Progress(cfg.loop.steps, start_step, "edit", quiet=quiet)
    callbacks = [
        progress,
        runs.every(cfg.output.preview_every, lambda s: export.write_png(
            folder / "previews" / f"step_{s.step:06d}.png", before_after_grid(original, s.splats, preview_cams))),
        runs.every(cfg.output.checkpoint_every, lambda s: save_checkpoint(s, folder)),
    ]
    loop_timer = runs.Timer()
    try:
        optimize(state, sampler, objective, cfg.loop, cfg.optim, callbacks)
    except KeyboardInterrupt:
        progress.close()
        save_checkpoint(state, folder)
        raise UserError(f"interrupted at step {state.step}/{cfg.loop.steps}; checkpoint saved. "
                        f"Continue with: lucidkit edit --resume {folder}") from None
    progress.close()
    loop_seconds = loop_timer.elapsed()
    save_checkpoint(state, folder)
    return finish(cfg, state, folder, prior, source, original, start_step, timer=timer, view_size=view_size,
                  timings={"load_s": load_seconds, "optimize_s": loop_seconds,
                           "s_per_update": loop_seconds / max(state.step - start_step, 1)})


def finish(cfg: EditConfig, state: TrainState, folder: Path, prior, source: EditSource, original: dict,
           start_step: int, timings: dict, timer, view_size: int) -> RunResult:
    """Write the final outputs: scene.ply (input frame and SH degree), preview.png, before_after.mp4, manifest.json."""
    import numpy as np

    from lucidkit import export
    from lucidkit.runs import render_views
    from lucidkit.splat.scene import write_ply

    t0 = time.perf_counter()
    anchor_index = state.strategy_state["anchor_index"]
    splats, normals = source.file_splats(state.splats, anchor_index, state.frozen)
    scene = write_ply(folder / "scene.ply", splats, normals=normals, with_normals=source.scene.has_normals)
    polar = cfg.camera.eval_polar_deg[0]
    views = view_cameras(source, cfg.camera, cfg.output.eval_views, view_size, polar)
    export.write_png(folder / "preview.png", before_after_grid(original, state.splats, views))
    outputs = ["scene.ply", "preview.png", "config.yaml", "checkpoint.pt"]
    if cfg.output.turntable_frames > 0:
        n = cfg.output.turntable_frames
        cams = (source.cameras.evenly_spaced(n, view_size) if source.cameras is not None
                else turntable(n, cfg.camera, view_size, view_size))
        before, after = render_views(original, cams)[0], render_views(state.splats, cams)[0]  # [F, H, W, 3]
        frames = np.concatenate([export.to_uint8(before.numpy()), export.to_uint8(after.numpy())], axis=2)
        outputs.append(export.write_video(folder / "before_after.mp4", frames, fps=cfg.output.fps).name)
    timings = {**timings, "outputs_s": time.perf_counter() - t0, "total_s": timer.elapsed()}
    frozen = 0 if state.frozen is None else int(state.frozen.sum())
    manifest = {
        "command": "edit",
        "prompt": cfg.prompt,
        "source_prompt": cfg.source_prompt,
        "guidance": cfg.guidance.method,
        "input": {"path": str(source.scene.path), "sha256": source.sha256, "gaussians": source.scene.num_gaussians,
                  "sh_degree": source.scene.sh_degree, "normals": source.scene.has_normals,
                  "dropped_properties": source.scene.ignored_properties},
        "frame": source.frame.describe(),
        "region": None if source.region is None else source.region.text,
        "cameras": cfg.scene.cameras,
        "seed": cfg.seed,
        "model": prior.source,
        "device": str(prior.device),
        "dtype": str(prior.dtype).replace("torch.", ""),
        "steps": state.step,
        "resumed_from_step": start_step if start_step else None,
        "gaussians": len(state.splats["means"]),
        "frozen_gaussians": frozen,
        "edited_gaussians": len(state.splats["means"]) - frozen,
        "timings": timings,
        "outputs": outputs,
        "versions": export.package_versions(),
    }
    export.write_json(folder / "manifest.json", manifest)
    return RunResult(folder=folder, scene=scene, steps=state.step, gaussians=manifest["gaussians"],
                     seconds=timings["total_s"])
