"""The toy world: objects, captions, tokenizer, the shipped toy prior and the shipped toy evaluator (CPU, fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lucidkit.cameras import CameraConfig, eval_ring, orbit_cameras
from lucidkit.errors import UserError
from lucidkit.toyworld import captions as cap
from lucidkit.toyworld.data import render_ground_truth, render_object
from lucidkit.toyworld.objects import FIT_RADIUS, ToyObject, activated, build, world_objects

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
PRIOR = SAMPLES / "toy-prior"
EVALUATOR = SAMPLES / "toy-evaluator"


@pytest.fixture(scope="module")
def evaluator():
    from lucidkit.toyworld.evaluator import ToyEvaluator

    return ToyEvaluator.load()  # the shipped one, by default


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(PRIOR), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _ring(n: int = 8, polar_deg: float = 75.0):
    return eval_ring(n, CameraConfig(), 64, 64, polar_deg=polar_deg)


# ---------------------------------------------------------------------------------------------------------------- world


def test_every_object_is_a_small_gaussian_set_in_the_engine_layout():
    objects = world_objects()
    assert len({o.prompt for o in objects}) == len(objects) == 74
    for obj in objects:
        g = build(obj)
        n = g["means"].shape[0]
        assert 500 < n <= 3000, obj.prompt
        assert g["scales"].shape == (n, 3) and g["quats"].shape == (n, 4) and g["opacities"].shape == (n,)
        assert g["sh0"].shape == (n, 1, 3) and g["shN"].shape == (n, 0, 3)
        assert g["means"].norm(dim=-1).max() <= FIT_RADIUS + 1e-5  # fits the recipe's cameras
        rgb = activated(g)["colors"]
        assert (rgb >= 0).all() and (rgb <= 1).all()


def test_oriented_objects_look_different_from_front_and_back():
    cams = _ring(4, polar_deg=90.0)  # azimuths 0 (front), 90, 180 (back), 270

    def changed_pixels(obj):  # share of pixels whose colour differs clearly between the front and back views
        img = render_object(obj, cams)
        return float(((img[0] - img[2]).abs().amax(-1) > 0.2).float().mean())

    for shape in ("house", "penguin"):
        assert changed_pixels(ToyObject(shape)) > 0.03, shape
    assert changed_pixels(ToyObject("sphere", "red")) < 0.005  # a plain sphere looks alike from both sides


def test_stripes_have_at_least_six_periods_around_the_object():
    g = activated(build(ToyObject("cylinder", "red", "striped", "yellow")))
    ring = g["means"][g["means"][:, 2].abs() < 0.05]  # points around the middle
    order = torch.atan2(ring[:, 1], ring[:, 0]).argsort()
    red = g["colors"][g["means"][:, 2].abs() < 0.05][order][:, 1] < 0.3  # red has little green, yellow a lot
    changes = (red != red.roll(1)).sum().item()
    assert changes >= 12  # >= 6 periods = >= 12 colour changes around


# ------------------------------------------------------------------------------------------------------------- captions


@pytest.mark.parametrize(
    "azimuth, view",
    [(0, "front"), (45, "front"), (-45, "front"), (46, "side"), (-90, "side"), (134, "side"),
     (135, "back"), (-135, "back"), (180, "back"), (-180, "back"), (360, "front"), (225, "back")],
)
def test_caption_view_follows_the_azimuth_rule(azimuth, view):
    house = ToyObject("house")
    assert cap.view_of_azimuth(azimuth) == view
    assert cap.caption(house, azimuth, u=0.99) == f"a house, {view} view"
    assert cap.caption(house, azimuth, u=0.15) == "a house"  # no suffix
    assert cap.caption(house, azimuth, u=0.05) == ""  # empty, for classifier-free guidance


def test_batched_caption_sampling_matches_the_rule():
    objects = world_objects()
    captions, table = cap.caption_table(objects)
    g = torch.Generator().manual_seed(0)
    index = torch.randint(0, len(objects), (500,), generator=g)
    azimuth = torch.rand(500, generator=g) * 360 - 180
    u = torch.rand(500, generator=g)
    ids = cap.sample_caption_ids(table, index, azimuth, u)
    for i in range(500):
        assert captions[ids[i]] == cap.caption(objects[index[i]], float(azimuth[i]), float(u[i]))
    assert 0.05 < (ids == 0).float().mean() < 0.15  # ~10% empty


def test_parse_prompt_and_ground_truth():
    attrs = cap.parse_prompt("A blue and white checkered sphere, back view")
    assert (attrs.shape, attrs.colour, attrs.colour2, attrs.pattern, attrs.view) == (
        "sphere", "blue", "white", "checkered", "back")
    assert cap.parse_prompt("a DSLR photo of an orange cone").object() == ToyObject("cone", "orange")
    assert cap.parse_prompt("a penguin, side view").object() == ToyObject("penguin")
    splats = cap.ground_truth("a red and yellow striped torus")
    assert torch.equal(splats["means"], build(ToyObject("torus", "red", "striped", "yellow"))["means"])
    with pytest.raises(UserError, match="bagel"):
        cap.ground_truth("a DSLR photo of a bagel")
    with pytest.raises(UserError, match="colour"):
        cap.ground_truth("a cube")


# ------------------------------------------------------------------------------------------------ tokenizer and prior


def test_shipped_prior_is_a_standard_small_sd_folder(pipe):
    size = sum(f.stat().st_size for f in PRIOR.rglob("*") if f.is_file())
    assert size <= 25e6
    index = json.loads((PRIOR / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline" and index["requires_safety_checker"] is False
    assert pipe.vae_scale_factor == 4 and pipe.unet.config.sample_size == 16
    sched = pipe.scheduler.config
    assert (sched.beta_start, sched.beta_end, sched.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert (sched.num_train_timesteps, sched.prediction_type, sched.steps_offset) == (1000, "epsilon", 1)
    # Safetensors, stored in half precision.
    from safetensors import safe_open

    for weights in ("unet/diffusion_pytorch_model", "vae/diffusion_pytorch_model", "text_encoder/model"):
        with safe_open(str(PRIOR / f"{weights}.safetensors"), "pt") as f:
            name = next(iter(f.keys()))
            assert f.get_tensor(name).dtype == torch.float16, weights


def test_shipped_tokenizer_has_the_full_vocabulary(pipe):
    from transformers import CLIPTokenizer

    from lucidkit.toyworld.captions import caption_words

    tok = CLIPTokenizer.from_pretrained(str(PRIOR / "tokenizer"))
    assert len(tok) == len(pipe.tokenizer) > 512  # bytes, bytes + </w>, merges, start and end
    assert tok.model_max_length == 77
    for word in caption_words():
        ids = tok(word, add_special_tokens=False).input_ids
        assert len(ids) == 1, word  # every caption word is one token
    ids = tok("a red cube, front view").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and len(ids) == 8
    assert tok.convert_ids_to_tokens(ids[1:-1]) == ["a</w>", "red</w>", "cube</w>", ",</w>", "front</w>", "view</w>"]
    assert len(tok("a DSLR photo of a bagel").input_ids) > 4  # any text tokenises


@pytest.mark.parametrize("prompt", ["a red cube", "a blue and white striped sphere", "a penguin, back view"])
def test_prior_samples_show_the_prompt(pipe, evaluator, prompt):
    # Fixed seeds, 20 DDIM steps; the prior gets 90-100% of samples right per attribute
    # (docs/results/toy_prior_quality.txt), so ask for 3 of 4.
    generators = [torch.Generator().manual_seed(s) for s in range(4)]
    out = pipe([prompt] * 4, num_inference_steps=20, guidance_scale=7.5, generator=generators, output_type="pt")
    images = out.images.permute(0, 2, 3, 1)  # [4, 64, 64, 3]
    assert evaluator.matches(images, prompt).sum() >= 3  # shape, colour(s) and pattern all right
    view = cap.parse_prompt(prompt).view
    if view is not None:
        assert evaluator.predict(images)["view"].count(view) >= 3  # a back-view prompt shows the back


# ------------------------------------------------------------------------------------------------------------ evaluator


@pytest.mark.parametrize(
    "prompt", ["a green cylinder", "a purple torus", "a red and yellow striped cone", "a blue and white checkered cube"]
)
def test_evaluator_reads_ground_truth_renders(evaluator, prompt):
    images = render_ground_truth(prompt, _ring(6))
    assert evaluator.prompt_accuracy(images, prompt) >= 5 / 6


@pytest.mark.parametrize("prompt", ["a house", "a penguin"])
def test_evaluator_view_consistency_and_multi_face(evaluator, prompt):
    # Azimuths clear of the 45/135 degree boundaries, where front/side/back is a matter of degrees.
    azimuth = torch.tensor([0.0, 25.0, -25.0, 75.0, -105.0, 160.0, -160.0, 180.0])
    cams = orbit_cameras(azimuth, torch.full((8,), 80.0), torch.full((8,), 3.5), torch.full((8,), 0.55), 64, 64)
    images = render_ground_truth(prompt, cams)
    assert evaluator.view_consistency(images, cams.azimuth_deg, prompt) >= 7 / 8
    assert evaluator.multi_face_rate(images, cams.azimuth_deg, prompt) == 0.0
    # A "scene" that shows its front all the way round is a multi-face failure.
    fronts = images[:1].expand(8, -1, -1, -1)
    assert evaluator.multi_face_rate(fronts, cams.azimuth_deg, prompt) == 1.0
    assert evaluator.view_consistency(images, cams.azimuth_deg, "a red cube") != evaluator.view_consistency(
        images, cams.azimuth_deg, "a red cube")  # NaN: a cube has no front


def test_evaluator_rejects_bad_input(evaluator):
    with pytest.raises(UserError, match=r"\[B, H, W, 3\]"):
        evaluator.predict(torch.zeros(2, 3, 64, 64))
    with pytest.raises(UserError, match="toy evaluator folder"):
        type(evaluator).load(SAMPLES / "does-not-exist")
