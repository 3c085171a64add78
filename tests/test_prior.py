"""DiffusionPrior on tiny random pipelines: loading, shapes, gradients, and the errors a user sees.

CPU only, offline: every model is built in-process by lucidkit.testing; nothing touches a hub.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from lucidkit.devices import resolve_dtype
from lucidkit.errors import UserError
from lucidkit.prior.core import DiffusionPrior
from lucidkit.prior.files import ModelLoadError, check_safetensors_file
from lucidkit.testing import save_tiny_lora, save_tiny_pipeline, save_tiny_single_file


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[int, Path]:
    """Tiny pipeline folders with a x2 and a x4 VAE (32 px images), seed 0."""
    root = tmp_path_factory.mktemp("priors")
    return {f: save_tiny_pipeline(root / f"tiny-x{f}", seed=0, vae_scale_factor=f) for f in (2, 4)}


@pytest.fixture(scope="module")
def other_seed_dir(tmp_path_factory) -> Path:
    """A tiny pipeline with the same shapes as tiny_dirs[2] but other weights (seed 1)."""
    return save_tiny_pipeline(tmp_path_factory.mktemp("other") / "tiny-seed1", seed=1)


@pytest.fixture(scope="module")
def prior(tiny_dirs) -> DiffusionPrior:
    return DiffusionPrior.load(str(tiny_dirs[2]))


@pytest.fixture
def offline(monkeypatch):
    """Offline mode, and a tripwire: any attempt to reach the network fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the hub")

    monkeypatch.setattr("lucidkit.prior.hub._hub_reachable", no_network)


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


# --- loading and attributes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("factor, latent", [(2, 16), (4, 8)])
def test_sizes_come_from_the_model_configs(tiny_dirs, factor, latent):
    p = DiffusionPrior.load(tiny_dirs[factor])
    assert p.vae_scale_factor == factor
    assert p.latent_size == latent and p.resolution == 32 and p.latent_channels == 4
    assert p.scaling_factor == pytest.approx(0.18215)
    z = p.encode_images(torch.rand(1, 3, 32, 32))
    assert z.shape == (1, 4, latent, latent)


def test_models_are_frozen_in_eval_mode_with_sd_schedule(prior):
    for model in (prior.unet, prior.vae, prior.text_encoder):
        assert not model.training
        assert not any(p.requires_grad for p in model.parameters())
    a = prior.alphas_cumprod
    assert a.shape == (1000,) and a.dtype == torch.float32 and a.device == prior.device
    assert prior.num_train_timesteps == 1000
    # SD's scaled-linear schedule 0.00085 -> 0.012: first and last ᾱ
    assert a[0].item() == pytest.approx(1 - 0.00085, rel=1e-5)
    assert a[-1].item() == pytest.approx(0.00466, rel=1e-2)
    assert prior.source["kind"] == "folder" and prior.source["dtype"] == "fp32"
    assert json.dumps(prior.describe())  # manifest-ready


# --- text -------------------------------------------------------------------------------------------------------


def test_embed_shapes_and_cache(tiny_dirs):
    p = DiffusionPrior.load(tiny_dirs[2])
    calls = []
    p.text_encoder.register_forward_hook(lambda *args: calls.append(1))
    e = p.embed(["a red cube", "", "a red cube"])
    assert e.shape == (3, 77, 32) and e.dtype == torch.float32
    assert torch.equal(e[0], e[2]) and not torch.equal(e[0], e[1])
    assert len(calls) == 1  # both distinct prompts in one batch
    again = p.embed(["", "a red cube"])
    assert len(calls) == 1  # served from the cache
    assert torch.equal(again[1], e[0])
    again[1].zero_()  # callers cannot corrupt the cache
    assert torch.equal(p.embed(["a red cube"])[0], e[0])


def test_any_ascii_prompt_tokenises(prior):
    e = prior.embed(["A DSLR photo of a Bagel!! 3/4 view, #42 (sks) dog"])
    assert torch.isfinite(e).all()


# --- images <-> latents ------------------------------------------------------------------------------------------


def test_encode_gives_gradients_to_images(prior):
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    z0 = prior.encode_images(images, generator=torch.Generator().manual_seed(0))  # [2, 4, 16, 16]
    assert z0.shape == (2, 4, 16, 16) and z0.dtype == torch.float32
    z0.square().sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert not any(p.grad is not None for p in prior.vae.parameters())  # the VAE itself stays frozen


def test_encode_draws_the_sample_diffusers_draws(prior):
    # the recipe's z0 = vae.encode(2·img − 1).latent_dist.sample(generator) · scaling_factor, same numbers
    images = torch.rand(2, 3, 32, 32)
    z = prior.encode_images(images, generator=torch.Generator().manual_seed(7))
    dist = prior.vae.encode((2 * images - 1).to(prior.dtype)).latent_dist
    expected = dist.sample(torch.Generator().manual_seed(7)).float() * prior.scaling_factor
    torch.testing.assert_close(z, expected, rtol=1e-5, atol=1e-5)
    other_noise = dist.sample(torch.Generator().manual_seed(8)).float() * prior.scaling_factor
    assert (z - other_noise).abs().max() > 1e-3  # the noise shows in z: the check above could fail


def test_encode_is_seeded_and_accepts_other_sizes(prior):
    images = torch.rand(1, 3, 48, 64)
    z1 = prior.encode_images(images, generator=torch.Generator().manual_seed(3))
    z2 = prior.encode_images(images, generator=torch.Generator().manual_seed(3))
    assert z1.shape == (1, 4, 24, 32) and torch.equal(z1, z2)
    with pytest.raises(ValueError, match="multiple"):
        prior.encode_images(torch.rand(1, 3, 33, 32))


def test_decode_returns_images_in_unit_range(prior):
    img = prior.decode_latents(torch.randn(2, 4, 16, 16))
    assert img.shape == (2, 3, 32, 32) and img.dtype == torch.float32
    assert img.min() >= 0 and img.max() <= 1


# --- the UNet -------------------------------------------------------------------------------------------------------


def test_predict_noise_matches_calling_the_unet(prior):
    x = torch.randn(2, 4, 16, 16)
    t = torch.tensor([20, 980])
    emb = prior.embed(["a red cube", ""])
    eps = prior.predict_noise(x, t, emb)
    with torch.no_grad():
        direct = prior.unet(x, t, encoder_hidden_states=emb).sample
    assert eps.dtype == torch.float32 and not eps.requires_grad
    torch.testing.assert_close(eps, direct)
    # a scalar timestep is shared by the batch
    torch.testing.assert_close(
        prior.predict_noise(x, 20, emb[:1].expand(2, -1, -1)),
        prior.predict_noise(x, torch.tensor([20, 20]), emb[:1].expand(2, -1, -1)),
    )


def test_v_prediction_models_still_return_epsilon(tiny_dirs, tmp_path):
    folder = _copy(tiny_dirs[2], tmp_path)
    cfg_file = folder / "scheduler" / "scheduler_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["prediction_type"] = "v_prediction"
    cfg_file.write_text(json.dumps(cfg))
    p = DiffusionPrior.load(folder)
    x, t, emb = torch.randn(1, 4, 16, 16), torch.tensor([500]), p.embed(["a"])
    with torch.no_grad():
        v = p.unet(x, t, encoder_hidden_states=emb).sample
    a = p.alphas_cumprod[500]
    torch.testing.assert_close(p.predict_noise(x, t, emb), a.sqrt() * v + (1 - a).sqrt() * x)


def test_controlnet_residuals_are_used_when_cond_is_given(tiny_dirs):
    from diffusers import ControlNetModel

    p = DiffusionPrior.load(tiny_dirs[2])
    x, t, emb = torch.randn(2, 4, 16, 16), torch.tensor([10, 600]), p.embed(["a", "b"])
    plain = p.predict_noise(x, t, emb)
    with pytest.raises(ValueError, match="ControlNet"):
        p.predict_noise(x, t, emb, cond={"image": torch.rand(2, 3, 32, 32)})
    controlnet = ControlNetModel.from_unet(p.unet, conditioning_embedding_out_channels=(16, 32))
    with torch.no_grad():  # its zero-initialised output convolutions would hide any wiring mistake
        for name, param in controlnet.named_parameters():
            if "controlnet_" in name:
                param.normal_(0, 0.1)
    p.attach_controlnet(controlnet, source="tiny")
    skeleton = torch.rand(1, 3, 32, 32)  # one image broadcast over the batch
    assert not torch.allclose(p.predict_noise(x, t, emb, cond={"image": skeleton}), plain)
    torch.testing.assert_close(p.predict_noise(x, t, emb, cond={"image": skeleton, "scale": 0.0}), plain)
    assert p.source["controlnet"] == {"spec": "tiny"}


# --- LoRA -----------------------------------------------------------------------------------------------------------


def test_lora_changes_outputs_by_its_scale(tiny_dirs, tmp_path):
    lora = save_tiny_lora(tmp_path / "lora")
    x, t = torch.randn(1, 4, 16, 16), torch.tensor([300])
    base = DiffusionPrior.load(tiny_dirs[2])
    eps0 = base.predict_noise(x, t, base.embed(["a sks dog"]))

    with_lora = DiffusionPrior.load(tiny_dirs[2])
    with_lora.embed(["a sks dog"])  # cached before the LoRA: must be recomputed after
    with_lora.load_lora(lora.parent, scale=1.0)
    assert not torch.allclose(with_lora.predict_noise(x, t, with_lora.embed(["a sks dog"])), eps0)
    assert with_lora.source["loras"][0]["scale"] == 1.0

    muted = DiffusionPrior.load(tiny_dirs[2])
    muted.load_lora(lora, scale=0.0)
    torch.testing.assert_close(muted.predict_noise(x, t, muted.embed(["a sks dog"])), eps0)


def test_lora_errors_name_the_file(prior, tmp_path):
    with pytest.raises(ModelLoadError, match="pickle"):
        prior.load_lora(tmp_path / "lora.bin")
    with pytest.raises(ModelLoadError, match="not found"):
        prior.load_lora(tmp_path / "missing.safetensors")


# --- single-file checkpoints ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["sd1", "sd2"])  # OpenAI CLIP and OpenCLIP text-encoder names
def test_single_file_checkpoint_matches_the_folder(other_seed_dir, prior, tmp_path, layout):
    file = save_tiny_single_file(tmp_path / "tiny.safetensors", seed=0, layout=layout)
    # configs and tokenizer from a folder with OTHER weights: all weights must come from the file
    single = DiffusionPrior.load(file, config=other_seed_dir)
    assert single.source["kind"] == "single_file"
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([1, 999])
    emb = prior.embed(["a red cube", "a blue sphere"])
    torch.testing.assert_close(single.embed(["a red cube", "a blue sphere"]), emb)
    torch.testing.assert_close(single.predict_noise(x, t, emb), prior.predict_noise(x, t, emb))


@pytest.mark.parametrize("layout, arch", [("sd1", "sd15"), ("sd2", "sd21-base")])
def test_single_file_of_unknown_shapes_fails_clearly(tiny_dirs, tmp_path, layout, arch):
    file = save_tiny_single_file(tmp_path / "tiny.safetensors", layout=layout)
    # the key layout picks the shipped architecture; the tiny shapes do not fit it
    with pytest.raises(ModelLoadError, match=f"with the {arch} configs") as err:
        DiffusionPrior.load(file, tokenizer=tiny_dirs[2])
    assert str(file) in str(err.value)


def test_single_file_without_tokenizer_offline_says_what_to_pass(tmp_path, offline):
    file = save_tiny_single_file(tmp_path / "tiny.safetensors")
    with pytest.raises(ModelLoadError, match="--tokenizer") as err:
        DiffusionPrior.load(file)
    assert str(file) in str(err.value)


def test_non_sd_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    file = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(file))
    with pytest.raises(ModelLoadError, match="not an original-layout Stable Diffusion") as err:
        DiffusionPrior.load(file)
    assert str(file) in str(err.value)


# --- errors a user can cause ----------------------------------------------------------------------------------------


def test_missing_folder(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="does not exist") as err:
        DiffusionPrior.load(missing)
    assert str(missing) in str(err.value)


@pytest.mark.parametrize("part", ["unet", "vae", "text_encoder", "tokenizer", "scheduler"])
def test_folder_missing_a_part(tiny_dirs, tmp_path, part):
    folder = _copy(tiny_dirs[2], tmp_path)
    shutil.rmtree(folder / part)
    with pytest.raises(ModelLoadError) as err:
        DiffusionPrior.load(folder)
    message = str(err.value)
    assert f"{folder} has no {part}/" in message and "diffusers Stable Diffusion folder" in message


def test_folder_without_model_index_or_weights(tiny_dirs, tmp_path):
    folder = _copy(tiny_dirs[2], tmp_path)
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weights in vae/"):
        DiffusionPrior.load(folder)
    (folder / "model_index.json").unlink()
    with pytest.raises(ModelLoadError, match="no model_index.json"):
        DiffusionPrior.load(folder)


def test_truncated_weights_name_the_file(tiny_dirs, tmp_path):
    folder = _copy(tiny_dirs[2], tmp_path)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(ModelLoadError, match="truncated or corrupt") as err:
        DiffusionPrior.load(folder)
    assert str(weights) in str(err.value)
    with pytest.raises(ModelLoadError, match="truncated"):
        check_safetensors_file(weights)


def test_garbage_single_file_names_the_file(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(ModelLoadError, match="not a valid safetensors") as err:
        DiffusionPrior.load(file)
    assert str(file) in str(err.value)


@pytest.mark.parametrize("name", ["model.ckpt", "model.pt"])
def test_pickled_checkpoints_are_refused(tmp_path, name):
    file = tmp_path / name
    file.write_bytes(b"not opened")
    with pytest.raises(ModelLoadError, match="safetensors") as err:
        DiffusionPrior.load(file)
    assert str(file) in str(err.value)


def test_incomplete_tokenizer_is_caught(tiny_dirs, tmp_path):
    from transformers import CLIPTokenizer

    folder = _copy(tiny_dirs[2], tmp_path)
    shutil.rmtree(folder / "tokenizer")
    CLIPTokenizer().save_pretrained(str(folder / "tokenizer"))  # 3 tokens, like an offline hub id can give
    with pytest.raises(ModelLoadError, match="tokenizer") as err:
        DiffusionPrior.load(folder)
    assert str(folder) in str(err.value)


def test_unknown_hub_id_offline_fails_fast_with_advice(offline):
    with pytest.raises(ModelLoadError) as err:
        DiffusionPrior.load("nobody-here/no-such-model")
    message = str(err.value)
    assert "nobody-here/no-such-model" in message
    assert "offline" in message and "pass a local diffusers model folder or a .safetensors file" in message


def test_known_name_offline_without_cache_names_it(offline, monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelLoadError) as err:
        DiffusionPrior.load("sd21-base")
    assert "'sd21-base'" in str(err.value) and "pass a local diffusers model folder" in str(err.value)


def test_unknown_short_name_lists_known_ones():
    with pytest.raises(ModelLoadError, match="sd21-base"):
        DiffusionPrior.load("sd21")


def test_toy_prior_loads_or_says_how_to_get_it():
    from lucidkit.models import toy_prior_dir

    if (toy_prior_dir(check=False) / "model_index.json").is_file():
        p = DiffusionPrior.load("toy")
        assert p.source["kind"] == "toy" and p.latent_channels == 4
    else:
        with pytest.raises(UserError, match="toy prior .* is missing.*samples/toy-prior"):
            DiffusionPrior.load("toy")


def test_precision_rules():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("fp32", "cpu") == torch.float32
    with pytest.raises(UserError, match="CUDA"):
        resolve_dtype("bf16", "cpu")
    with pytest.raises(UserError, match="precision"):
        resolve_dtype("int8", "cpu")


def test_config_and_tokenizer_only_go_with_single_files(tiny_dirs):
    with pytest.raises(ModelLoadError, match="single .safetensors"):
        DiffusionPrior.load(tiny_dirs[2], tokenizer=tiny_dirs[2])


def test_tiny_models_are_seeded_and_leave_the_global_rng_alone():
    from lucidkit.testing import tiny_pipeline_components

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = tiny_pipeline_components(seed=5)["unet"].conv_in.weight
    b = tiny_pipeline_components(seed=5)["unet"].conv_in.weight
    assert torch.equal(a, b)
    assert torch.equal(torch.rand(3), expected)


def test_speed_and_memory_options_keep_results(tiny_dirs):
    ref = DiffusionPrior.load(tiny_dirs[2])
    p = DiffusionPrior.load(tiny_dirs[2])
    p.enable_fast_path()
    p.enable_low_memory()
    p.offload_text_encoder()
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([100, 700])
    emb = ref.embed(["a red cube", "a blue sphere"])
    torch.testing.assert_close(p.embed(["a red cube", "a blue sphere"]), emb)  # embedded after offloading
    torch.testing.assert_close(p.predict_noise(x, t, emb), ref.predict_noise(x, t, emb))
    images = torch.rand(2, 3, 32, 32)
    grads = []
    for prior in (ref, p):
        img = images.clone().requires_grad_(True)
        prior.encode_images(img, generator=torch.Generator().manual_seed(0)).square().sum().backward()
        grads.append(img.grad)
    torch.testing.assert_close(grads[1], grads[0])  # gradient checkpointing recomputes, same gradient
    assert p.describe()["low_memory"] and p.describe()["fast_path"]


def test_compile_cache_goes_to_the_user_cache_unless_the_user_chose_one(tmp_path, monkeypatch):
    """The fast path keeps torch.compile's caches in ~/.cache/lucidkit/inductor (they outlive /tmp), never
    overrides a TORCHINDUCTOR_CACHE_DIR the user set, and keeps torch's default when the cache folder cannot be made."""
    from lucidkit.prior.fast import use_persistent_compile_cache

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = use_persistent_compile_cache()
    assert folder == tmp_path / "cache" / "lucidkit" / "inductor" and folder.is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(folder)

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert use_persistent_compile_cache() == tmp_path / "mine"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    (tmp_path / "blocked").write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked"))
    assert use_persistent_compile_cache() is None
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ
