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

from pathlib import Path

import numpy as np
import torch

from lucidkit import export
from lucidkit.camera_files import CameraSetSampler
from lucidkit.cameras import CameraConfig, OrbitSampler, eval_ring, turntable
from lucidkit.edit.config import EditConfig
from lucidkit.edit.objective import EditObjective
from lucidkit.edit.source import EditSource, load_source
from lucidkit.errors import UserError
from lucidkit.runs import render_views
from lucidkit.scene_run import RunResult, SceneTask, run_scene
from lucidkit.splat.ply import write_ply


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


class EditTask(SceneTask):
    """edit's part of the shared run: the input's Gaussians in the engine frame, frozen outside the region, the
    guidance + anchor objective, cameras around the scene (or the given ones), before/after previews."""

    command = "edit"
    empty_prompt = 'the prompt is empty; say what the scene should become, e.g. --prompt "a blue cube"'

    def __init__(self, cfg: EditConfig):
        super().__init__(cfg)
        text = cfg.source_prompt
        self.source_prompt = text.strip() if text and text.strip() else None

    def check_input(self):
        self.source = load_source(self.cfg.scene)

    def describe(self, prior):
        scene = self.source.scene
        return (f"{scene.num_gaussians} Gaussians, SH degree {scene.sh_degree}, {int(self.source.editable.sum())} "
                f"editable; prior {self.cfg.prior.model!r} on {prior.device}")

    def initial_splats(self, device):
        return torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(device).clone())
                                       for k, v in self.source.engine_splats("cpu").items()})

    def start_state(self, state, resume, folder):
        source, device = self.source, state.splats["means"].device
        self.original = source.engine_splats(device)
        if resume:
            if state.extras.get("input_sha256") != source.sha256:
                raise UserError(f"cannot resume: {self.cfg.scene.path} changed since the run in {folder} started")
            return
        state.frozen = None if source.frozen is None else source.frozen.to(device)
        # carried by gsplat's clone/split/prune like every per-Gaussian tensor of the strategy state
        state.strategy_state["anchor_index"] = torch.arange(source.scene.num_gaussians, device=device)
        state.extras["input_sha256"] = source.sha256

    def objective(self, guidance, state):
        return EditObjective(guidance, self.cfg, self.original, state)

    def sampler(self, size):
        if self.source.cameras is not None:
            return CameraSetSampler(self.source.cameras, size)
        return OrbitSampler(self.cfg.camera, size, size)

    def write_preview(self, state, path, view_size):
        cams = view_cameras(self.source, self.cfg.camera, 4, view_size, self.cfg.camera.eval_polar_deg[0])
        export.write_png(path, before_after_grid(self.original, state.splats, cams))

    def write_outputs(self, state, folder, view_size):
        """scene.ply (input frame and SH degree), preview.png, before_after.mp4."""
        cfg, source, original = self.cfg, self.source, self.original
        splats, normals = source.file_splats(state.splats, state.strategy_state["anchor_index"], state.frozen)
        scene = write_ply(folder / "scene.ply", splats, normals=normals, with_normals=source.scene.has_normals)
        views = view_cameras(source, cfg.camera, cfg.output.eval_views, view_size, cfg.camera.eval_polar_deg[0])
        export.write_png(folder / "preview.png", before_after_grid(original, state.splats, views))
        outputs = ["preview.png"]
        if cfg.output.turntable_frames > 0:
            n = cfg.output.turntable_frames
            cams = (source.cameras.evenly_spaced(n, view_size) if source.cameras is not None
                    else turntable(n, cfg.camera, view_size, view_size))
            before, after = render_views(original, cams)[0], render_views(state.splats, cams)[0]  # [F, H, W, 3]
            frames = np.concatenate([export.to_uint8(before.numpy()), export.to_uint8(after.numpy())], axis=2)
            outputs.append(export.write_video(folder / "before_after.mp4", frames, fps=cfg.output.fps).name)
        frozen = 0 if state.frozen is None else int(state.frozen.sum())
        fields = {
            "source_prompt": cfg.source_prompt,
            "guidance": cfg.guidance.method,
            "input": {"path": str(source.scene.path), "sha256": source.sha256, "gaussians": source.scene.num_gaussians,
                      "sh_degree": source.scene.sh_degree, "normals": source.scene.has_normals,
                      "dropped_properties": source.scene.ignored_properties},
            "frame": source.frame.describe(),
            "region": None if source.region is None else source.region.text,
            "cameras": cfg.scene.cameras,
            "frozen_gaussians": frozen,
            "edited_gaussians": len(state.splats["means"]) - frozen,
        }
        return scene, outputs, fields


def run(cfg: EditConfig, folder: Path, resume: bool = False, quiet: bool = False,
        announce=lambda message: None, prior=None) -> RunResult:
    """Run (or resume) an edit into `folder` (see `scene_run.run_scene`). The input file is only read."""
    return run_scene(EditTask(cfg), folder, resume=resume, quiet=quiet, announce=announce, prior=prior)
