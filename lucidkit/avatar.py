"""An SMPL-X body in a pose → a 3D Gaussian avatar: the engine function behind `lucidkit avatar`.

pose (file, sequence frame or built-in name) + body model → the posed body in lucidkit's world (z-up, facing +x,
fitted to the recipe's orbit) → Gaussians sampled on its surface → the generate loop, where every update's views
also get the body's OpenPose skeleton drawn from the same cameras, fed to a ControlNet whose residuals enter the
UNet calls of the guidance (`--control-scale`; the inversion steps may leave it out) → scene.ply (in the body's
frame, z-up), preview.png, turntable video with the skeleton beside it, manifest.json with the body's frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from lucidkit import config as config_lib
from lucidkit.objectives import RegularizerConfig, RenderObjective
from lucidkit.scene_run import RunResult, SceneRunConfig, SceneTask, run_scene


@dataclass
class BodyConfig:
    """The body and its pose."""

    pose: str = "t-pose"
    """A built-in pose (t-pose, a-pose, arms-down, arms-up, walk, sit, wave), or an SMPL-X .npz/.json file, or an
    AMASS-style sequence .npz (with `frame`)."""
    frame: int | None = None
    """The frame of a pose sequence."""
    smplx_models: str | None = None
    """A folder with smplx/SMPLX_NEUTRAL.npz (and MALE/FEMALE), as smplx.create reads it; default
    $LUCIDKIT_SMPLX_MODELS, else lucidkit's built-in body."""
    gender: str = "neutral"
    """Which SMPL-X model: neutral, male or female."""
    n_points: int = 20000
    """Initial Gaussians sampled on the posed body's surface."""
    opacity: float = 0.1
    """Opacity of the initial Gaussians."""


@dataclass
class ControlConfig:
    """The OpenPose ControlNet that holds the avatar to the pose."""

    model: str = "toy-pose"
    """'toy-pose' (shipped, for the toy prior), 'controlnet-openpose' (SD 1.5), a diffusers ControlNet folder, a hub
    id, or 'none' (no ControlNet: the body shape comes from the initial Gaussians alone)."""
    scale: float = 1.0
    """Strength of the ControlNet's residuals."""
    in_inversion: bool = True
    """Also condition ISM's inversion steps (the target and both CFG branches always are). On: the toy avatars of
    held-out poses match their body better (IoU 0.85 vs 0.80, docs/avatar.md), for one ControlNet pass per
    inversion call (~+7% per update with SD 1.5)."""
    hands: bool | None = None
    """Draw both hands' 21 OpenPose keypoints (from SMPL-X's wrist, finger joints and fingertips) in the skeleton.
    Default: on for real OpenPose ControlNets (trained with hand drawings too), off for the toy one (trained on
    bodies only). Face keypoints are not drawn: SMPL-X's face landmarks need the model's landmark embedding, which
    the built-in body only stands in for."""


@dataclass
class AvatarConfig(SceneRunConfig):
    """Everything `lucidkit avatar` does, as one config (presets/avatar/*.yaml)."""

    prompt: str = ""
    """The text prompt, e.g. "a knight in shining armour"."""
    body: BodyConfig = field(default_factory=BodyConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    regularizers: RegularizerConfig = field(default_factory=RegularizerConfig)


def resolve_config(preset: str | None, overrides: dict) -> AvatarConfig:
    """Preset + overrides → AvatarConfig (without a preset: 'toy' for the toy prior, else 'default')."""
    return config_lib.resolve_preset(AvatarConfig, "avatar", preset, overrides)


class AvatarTask(SceneTask):
    """avatar's part of the shared run: Gaussians on the posed body, the generate objective with the skeleton as
    ControlNet condition, orbit cameras, the skeleton beside the turntable."""

    command = "avatar"

    def check_input(self):
        from lucidkit.body.pose import load_pose, pose_body

        body = self.cfg.body
        self.hands = bool(self.cfg.control.hands)  # until a ControlNet is attached (`resolve_hands`)
        self.params = load_pose(body.pose, body.frame)
        self.body = pose_body(self.params, body.smplx_models, body.gender)
        self.vertices, self.joints = self.body.world_vertices(), self.body.world_joints()  # [V, 3], [J, 3] z-up

    def attach(self, prior):
        from lucidkit.prior.controlnet import check_openpose

        spec = self.cfg.control.model
        if spec != "none":
            prior.attach_controlnet(spec)  # one clear line if it does not fit the prior
            check_openpose(prior.controlnet, spec)
            self.resolve_hands(prior)

    def resolve_hands(self, prior):
        """`control.hands`, or by default: hands for every attached ControlNet except lucidkit's toy one."""
        kind = (prior.source.get("controlnet") or {}).get("kind")
        self.hands = self.cfg.control.hands if self.cfg.control.hands is not None else kind not in (None, "toy")

    def describe(self, prior):
        return (f"pose {self.cfg.body.pose!r} on {self.body.model}; prior {self.cfg.prior.model!r} on {prior.device}, "
                f"ControlNet {self.cfg.control.model!r}")

    def initial_splats(self, device):
        from lucidkit.body.init import init_body

        generator = torch.Generator().manual_seed(self.cfg.seed)
        return init_body(self.body, self.cfg.body.n_points, generator, opacity=self.cfg.body.opacity, device=device)

    def skeletons(self, cams) -> torch.Tensor:
        """[C, H, W, 3] the OpenPose condition images of the posed body seen by `cams`, whose visibility ray casts
        run on the cameras' device (on a CPU, 4 views with hands took ~300 ms per update: the GPU would wait)."""
        from lucidkit.body.skeleton import skeleton_images

        device = cams.viewmats.device
        if getattr(self, "_mesh", (None,))[0] != device:  # the posed mesh, moved once per device
            self._mesh = (device, *(v.to(device) for v in (self.joints, self.vertices, self.body.faces,
                                                            self.body.vertex_joint)))
        joints, vertices, faces, vertex_joint = self._mesh[1:]
        return skeleton_images(joints, vertices, faces, cams, vertex_joint, self.hands)

    def condition(self, cams) -> dict | None:
        if self.cfg.control.model == "none":
            return None
        # on the cameras' device once per update (skeleton_images), not copied from the host by every UNet call
        image = self.skeletons(cams).permute(0, 3, 1, 2)
        return {"image": image, "scale": self.cfg.control.scale,
                "in_inversion": self.cfg.control.in_inversion}

    def objective(self, guidance, state):
        size = self.cfg.loop.resolution or guidance.prior.resolution
        return RenderObjective(guidance, self.cfg.regularizers, state.generator, condition=self.condition,
                               sampler=self.sampler(size))

    def turntable_panel(self, cams) -> torch.Tensor:
        return self.skeletons(cams)  # the avatar beside its condition

    def manifest_fields(self):
        cfg = self.cfg
        return {"pose": {"spec": cfg.body.pose, "frame": cfg.body.frame, "source": self.body.source,
                         "params": self.params.to_json()},
                "body": {"model": self.body.model, "frame": self.body.frame(),
                         "scene_frame": "lucidkit world: z up, the body faces +x (SMPL-X y up, +z front)"},
                "control": {"model": cfg.control.model, "scale": cfg.control.scale,
                            "in_inversion": cfg.control.in_inversion, "hands": self.hands}}


def run(cfg: AvatarConfig, folder: Path, resume: bool = False, quiet: bool = False,
        announce=lambda message: None, prior=None) -> RunResult:
    """Run (or resume) an avatar into `folder` (see `scene_run.run_scene`)."""
    return run_scene(AvatarTask(cfg), folder, resume=resume, quiet=quiet, announce=announce, prior=prior)
