"""`lucidkit avatar` end to end on CPU with a tiny random prior and a tiny random ControlNet: outputs, the condition
that reaches the UNet, resume, and bad input."""

import json

import imageio.v3 as iio
import pytest
import torch
from click.testing import CliRunner

from conftest import one_line_error
from lucidkit.commands.cli import cli
from lucidkit.splat.ply import read_ply

pytest.importorskip("smplx")


def avatar(*args):
    return CliRunner().invoke(cli, ["avatar", *[str(a) for a in args]], catch_exceptions=False)


@pytest.fixture(scope="module")
def tiny_controlnet(tiny_prior_dir, tmp_path_factory):
    """A random ControlNet shaped for the tiny prior (its UNet's blocks; condition images shrunk 4x, as its VAE)."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_pretrained(str(tiny_prior_dir / "unet"))
    folder = tmp_path_factory.mktemp("controlnet") / "control_openpose_tiny"
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 16))
    with torch.no_grad():  # a fresh ControlNet's output convolutions are zero (no effect yet): as if trained a little
        for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                      controlnet.controlnet_cond_embedding.conv_out]:
            block.weight.normal_(0, 0.05)
    controlnet.save_pretrained(folder)
    return folder


def tiny(prior, controlnet, out):
    return ["--model", prior, "--controlnet", controlnet, "--preset", "tiny", "--out", out, "--quiet"]


def test_avatar_writes_every_output_around_the_posed_body(tiny_prior_dir, tiny_controlnet, tmp_path):
    out = tmp_path / "run"
    result = avatar("a red person", "--pose", "t-pose", *tiny(tiny_prior_dir, tiny_controlnet, out))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "avatar" and manifest["pose"]["spec"] == "t-pose"
    assert manifest["control"]["model"] == str(tiny_controlnet) and "smplx_to_world" in manifest["body"]["frame"]
    assert manifest["control"]["hands"] is True  # a ControlNet from a folder: a real one, drawn with hands
    means = read_ply(out / "scene.ply").splats["means"].detach()
    extent = means.amax(0) - means.amin(0)  # a T-pose: arms out along the world's y, the body up along z
    assert extent[1] > 1.5 * extent[0] and extent[2] > 1.5 * extent[0]
    frames = iio.imread(out / "turntable.mp4")
    assert frames.shape[2] == 2 * frames.shape[1]  # the avatar beside its skeleton condition
    skeleton_half = frames[:, :, frames.shape[1]:].astype(float)
    assert skeleton_half.max() > 100 and skeleton_half.mean() < 60  # coloured limbs on black


def test_the_skeleton_reaches_the_unet(tiny_prior_dir, tiny_controlnet):
    """With the condition the guidance's noise predictions differ from those without it; with 'none' nothing
    is attached."""
    from lucidkit.avatar import AvatarConfig, AvatarTask
    from lucidkit.cameras import OrbitSampler
    from lucidkit.prior import DiffusionPrior

    cfg = AvatarConfig(prompt="a red person")
    cfg.control.model = str(tiny_controlnet)
    task = AvatarTask(cfg)
    task.check_input()
    prior = DiffusionPrior.load(tiny_prior_dir)
    task.attach(prior)
    cams = OrbitSampler(cfg.camera, 32, 32).sample(2, 0, torch.Generator().manual_seed(0))
    cond = task.condition(cams)
    assert cond["image"].shape == (2, 3, 32, 32) and cond["image"].max() > 0.5
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([500, 500])
    emb = prior.embed(["a red person"]).expand(2, -1, -1)
    assert not torch.allclose(prior.predict_noise(x, t, emb, cond), prior.predict_noise(x, t, emb))
    cfg.control.model = "none"
    assert AvatarTask(cfg).condition(cams) is None


def test_different_poses_give_different_shapes(tiny_prior_dir, tiny_controlnet, tmp_path):
    extents = {}
    for pose in ("t-pose", "arms-down"):
        out = tmp_path / pose
        assert avatar("a red person", "--pose", pose, *tiny(tiny_prior_dir, tiny_controlnet, out)).exit_code == 0
        means = read_ply(out / "scene.ply").splats["means"].detach()
        extents[pose] = float(means[:, 1].max() - means[:, 1].min())  # arm span along the world's y
    assert extents["t-pose"] > 1.5 * extents["arms-down"]


def test_bad_avatar_input_is_one_line(tiny_prior_dir, tiny_controlnet, tmp_path):
    args = tiny(tiny_prior_dir, tiny_controlnet, tmp_path / "run")
    one_line_error(avatar("a red person", "--pose", "nope", *args), "unknown pose 'nope'")
    one_line_error(avatar("  ", "--pose", "t-pose", *args), "prompt is empty")
    canny = tmp_path / "control_canny"
    canny.mkdir()
    for f in tiny_controlnet.iterdir():
        (canny / f.name).write_bytes(f.read_bytes())
    one_line_error(avatar("a red person", *tiny(tiny_prior_dir, canny, tmp_path / "run")), "not an OpenPose")
    one_line_error(avatar("a red person", "--model", tiny_prior_dir, "--controlnet", "random", "--preset", "tiny",
                          "--out", tmp_path / "run"), "ControlNet random", "different model families")
    assert not (tmp_path / "run").exists()
