"""Posed people of the toy world, their OpenPose conditions, and the toy pose ControlNet's training script."""

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("smplx")

from lucidkit.toyworld.objects import COLOURS  # noqa: E402
from lucidkit.toyworld.people import person_caption, person_prompt, render_people  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_captions_follow_the_toy_world_rule():
    assert person_prompt("red") == "a red person" and person_prompt("orange") == "an orange person"
    assert person_caption("blue", 170.0, 0.9) == "a blue person, back view"
    assert person_caption("blue", 10.0, 0.9) == "a blue person, front view"
    assert person_caption("blue", 10.0, 0.15) == "a blue person" and person_caption("blue", 10.0, 0.05) == ""


def test_people_renders_agree_with_their_conditions_and_colours():
    pool, poses = render_people(2, 3, seed=0)
    assert len(pool) == 6 and len(poses) == 2
    assert pool.premultiplied.shape == (6, 64, 64, 3) and pool.condition.shape == (6, 64, 64, 3)
    alpha = pool.alpha[..., 0].float() / 255
    assert (alpha > 0.5).float().mean() > 0.02  # a person is in every picture ...
    drawn = pool.condition.any(-1)
    near_body = torch.nn.functional.max_pool2d((alpha > 0.5).float()[:, None], 5, 1, 2)[:, 0] > 0
    assert (drawn & near_body).sum() / drawn.sum() > 0.95  # ... and the skeleton lies on it
    for i in range(len(pool)):
        name = list(COLOURS)[int(pool.colour_index[i])]
        rgb = pool.premultiplied[i].float()[alpha[i] > 0.9] / 255
        expected = torch.tensor(COLOURS[name])
        assert torch.nn.functional.cosine_similarity(rgb.median(0).values, expected, dim=0) > 0.97, name


def test_controlnet_training_script_smoke(tmp_path):
    pytest.importorskip("diffusers")
    sys.path.insert(0, str(ROOT))  # tools/ is a package of the repository, not of the installed lucidkit
    try:
        from tools.toyworld import train_controlnet
    finally:
        sys.path.remove(str(ROOT))
    train_controlnet.main(["--out", str(tmp_path), "--smoke", "--device", "cpu"])
    folder = tmp_path / "toy-controlnet-pose"
    assert (folder / "config.json").is_file() and (folder / "diffusion_pytorch_model.safetensors").is_file()
    report = (tmp_path / "controlnet_eval.json").read_text()
    assert '"with"' in report and '"without"' in report
    # The saved ControlNet attaches to the toy prior and changes its noise prediction for a skeleton image.
    from lucidkit.prior import DiffusionPrior

    prior = DiffusionPrior.load("toy", device="cpu")
    prior.attach_controlnet(str(folder))
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    emb = prior.embed(["a red person"])
    skeleton = torch.zeros(1, 3, 64, 64)
    skeleton[:, 0, 10:50, 30:34] = 1.0
    plain = prior.predict_noise(x, torch.tensor([500]), emb)
    guided = prior.predict_noise(x, torch.tensor([500]), emb, cond={"image": skeleton})
    assert guided.shape == plain.shape and not torch.equal(guided, plain)
