"""Initial Gaussians, their parameters and optimizers, and the shipped sample scene."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lucidkit.errors import UserError
from lucidkit.splat.init import InitConfig, init_box, init_from_ply, init_gaussians, init_sphere
from lucidkit.splat.optim import OptimConfig, apply_lrs, lr_at, make_optimizers
from lucidkit.splat.ply import PlyError, read_ply, write_vertices
from lucidkit.splat.scene import SH_C0, activated, create_splats, knn_mean_sq_dist, rgb_to_sh0, sh0_to_rgb
from lucidkit.toyworld.sample_scene import make_sample_scene, sample_scene_path


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------- parameters


def test_sh0_conversion():
    rgb = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(rgb_to_sh0(rgb), torch.tensor([-0.5, 0.0, 0.5]) / SH_C0)
    assert torch.allclose(sh0_to_rgb(rgb_to_sh0(rgb)), rgb)


def test_knn_scale_on_a_grid_and_chunking_does_not_change_it():
    # A 6x6x6 grid with spacing 0.1: every point has at least 3 neighbours at exactly 0.1.
    axis = torch.arange(6) * 0.1
    means = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)  # [216, 3]
    dist2 = knn_mean_sq_dist(means)
    assert torch.allclose(dist2, torch.full_like(dist2, 0.01), rtol=1e-4)
    chunked = knn_mean_sq_dist(means, chunk_elems=1000)  # 4 rows at a time
    assert torch.allclose(chunked, dist2)


def test_create_splats_layout_and_activations():
    means = torch.rand(50, 3, generator=gen())
    rgb = torch.rand(50, 3, generator=gen(1))
    splats = create_splats(means, rgb, opacity=0.1, sh_degree=2)
    shapes = {name: tuple(p.shape) for name, p in splats.items()}
    assert shapes == {
        "means": (50, 3), "scales": (50, 3), "quats": (50, 4), "opacities": (50,), "sh0": (50, 1, 3),
        "shN": (50, 8, 3),
    }  # fmt: skip
    assert all(p.requires_grad and p.dtype == torch.float32 for p in splats.values())
    act = activated(splats)
    assert act["sh_degree"] == 2 and act["sh"].shape == (50, 9, 3)
    assert torch.allclose(act["opacities"], torch.full((50,), 0.1))
    assert torch.equal(act["quats"], torch.tensor([1.0, 0, 0, 0]).expand(50, 4))
    assert torch.allclose(sh0_to_rgb(act["sh"][:, 0]), rgb, atol=1e-6)
    expected_scale = knn_mean_sq_dist(means).sqrt()  # isotropic, from the 3 nearest neighbours
    assert torch.allclose(act["scales"], expected_scale[:, None].expand(50, 3))


def test_create_splats_grey_and_given_scales():
    splats = create_splats(torch.zeros(3, 3), scales=torch.tensor([0.1, 0.2, 0.3]))
    assert torch.equal(splats["sh0"], torch.zeros(3, 1, 3))  # grey
    assert splats["shN"].shape == (3, 0, 3)  # degree 0
    assert torch.allclose(splats["scales"].exp(), torch.tensor([[0.1] * 3, [0.2] * 3, [0.3] * 3]))
    # Duplicate points get a tiny scale instead of log(0) = -inf.
    assert torch.isfinite(create_splats(torch.zeros(3, 3))["scales"]).all()
    with pytest.raises(ValueError, match="opacity"):
        create_splats(torch.zeros(3, 3), opacity=1.0)


# ---------------------------------------------------------------------------------------------- optimizers


def test_lr_schedule_is_log_linear():
    assert lr_at(0, 1e-2, 1e-4, 100) == pytest.approx(1e-2)
    assert lr_at(50, 1e-2, 1e-4, 100) == pytest.approx(1e-3)  # geometric midpoint
    assert lr_at(100, 1e-2, 1e-4, 100) == pytest.approx(1e-4)
    assert lr_at(500, 1e-2, 1e-4, 100) == pytest.approx(1e-4)  # held after the end
    assert lr_at(70, 0.05, 0.05, 100) == 0.05


def test_optimizers_follow_the_recipe_schedule():
    cfg = OptimConfig()
    splats = create_splats(torch.rand(20, 3, generator=gen()), sh_degree=1)
    optimizers = make_optimizers(splats, cfg.initial_lrs(), eps=cfg.adam_eps)
    assert set(optimizers) == set(splats.keys())
    assert optimizers["means"].param_groups[0]["lr"] == pytest.approx(5.6e-4)
    assert optimizers["shN"].param_groups[0]["lr"] == pytest.approx(5e-3 / 20)

    lrs = apply_lrs(optimizers, 5000, cfg, max_steps=5000)
    expected = {"means": 5.6e-6, "sh0": 3e-3, "shN": 3e-3 / 20, "scales": 1e-3, "quats": 2e-4, "opacities": 0.05}
    for name, lr in expected.items():
        assert lrs[name] == pytest.approx(lr)
        assert optimizers[name].param_groups[0]["lr"] == pytest.approx(lr)

    # One step moves only the parameter that has a gradient.
    before = {name: p.detach().clone() for name, p in splats.items()}
    splats["means"].sum().backward()
    for opt in optimizers.values():
        opt.step()
    assert not torch.equal(splats["means"], before["means"])
    assert torch.equal(splats["scales"], before["scales"])


# ---------------------------------------------------------------------------------------------- initialisers


def test_init_sphere_counts_bounds_and_distance_distribution():
    splats = init_sphere(4000, radius=0.5, generator=gen())
    act = activated(splats)
    distance = act["means"].norm(dim=-1)
    assert act["means"].shape == (4000, 3)
    assert distance.max() < 0.5
    # Uniform in radius (the release's choice): the median distance is radius / 2, not radius / 2^(1/3).
    assert distance.median().item() == pytest.approx(0.25, abs=0.02)
    assert torch.allclose(act["opacities"], torch.full((4000,), 0.1))
    assert torch.equal(splats["sh0"], torch.zeros(4000, 1, 3))  # grey


def test_init_box_bounds():
    means = init_box(2000, half_extent=0.3, generator=gen())["means"].detach()
    assert means.shape == (2000, 3)
    assert means.abs().max() <= 0.3
    assert (means.min(0).values < -0.28).all() and (means.max(0).values > 0.28).all()  # fills the box


@pytest.mark.parametrize("init", [init_sphere, init_box])
def test_initialisers_are_deterministic(init):
    a, b, c = init(500, 0.5, gen(3)), init(500, 0.5, gen(3)), init(500, 0.5, gen(4))
    assert all(torch.equal(a[name], b[name]) for name in a.keys())
    assert not torch.equal(a["means"], c["means"])


def point_cloud(tmp_path, colours: dict[str, np.ndarray] | None = None, n: int = 6):
    columns = {c: np.linspace(-1, 1, n, dtype=np.float32) * s for c, s in zip("xyz", (1.0, 0.5, 0.25))}
    return write_vertices(tmp_path / "points.ply", dict(columns, **(colours or {})))


def test_init_from_ply_colours(tmp_path):
    red = np.array([255, 0, 0, 0, 128, 255], np.uint8)
    uchar = point_cloud(tmp_path, {"red": red, "green": np.zeros(6, np.uint8), "blue": np.full(6, 255, np.uint8)})
    rgb = sh0_to_rgb(init_from_ply(uchar)["sh0"].detach()[:, 0])  # [6, 3]
    assert torch.allclose(rgb[:, 0], torch.from_numpy(red / 255.0).float(), atol=1e-6)
    assert torch.allclose(rgb[:, 2], torch.ones(6), atol=1e-6)

    floats = point_cloud(tmp_path, {c: np.full(6, 0.25, np.float32) for c in ("red", "green", "blue")})
    assert torch.allclose(sh0_to_rgb(init_from_ply(floats)["sh0"].detach()), torch.tensor(0.25), atol=1e-6)

    grey = init_from_ply(point_cloud(tmp_path))
    assert torch.equal(grey["sh0"], torch.zeros(6, 1, 3))
    assert torch.allclose(grey["means"][:, 0], torch.linspace(-1, 1, 6))


def test_init_from_a_splat_file_uses_its_base_colour_and_positions():
    scene = read_ply(sample_scene_path())
    splats = init_from_ply(sample_scene_path())
    assert torch.equal(splats["means"], scene.splats["means"])
    rgb = sh0_to_rgb(scene.splats["sh0"]).clamp(0, 1)
    assert torch.allclose(sh0_to_rgb(splats["sh0"]), rgb, atol=1e-6)
    assert torch.allclose(activated(splats)["opacities"], torch.tensor(0.1))  # a fresh start, not the file's


def test_init_from_ply_subset_and_errors(tmp_path):
    path = point_cloud(tmp_path, n=50)
    a = init_from_ply(path, max_points=10, generator=gen(1))
    b = init_from_ply(path, max_points=10, generator=gen(1))
    assert a["means"].shape == (10, 3) and torch.equal(a["means"], b["means"])
    assert (a["means"][1:, 0] > a["means"][:-1, 0]).all()  # file order kept

    no_z = write_vertices(tmp_path / "xy.ply", {c: np.zeros(3, np.float32) for c in "xy"})
    with pytest.raises(PlyError, match="missing z"):
        init_from_ply(no_z)
    nan = write_vertices(tmp_path / "nan.ply", {c: np.array([0, np.nan, 1], np.float32) for c in "xyz"})
    with pytest.raises(PlyError, match="1 of 3 points have NaN"):
        init_from_ply(nan)


def test_init_gaussians_from_config(tmp_path):
    assert init_gaussians(InitConfig(shape="sphere", n_points=100), gen())["means"].shape == (100, 3)
    box = init_gaussians(InitConfig(shape="box", n_points=100, radius=0.2, opacity=0.3, sh_degree=1), gen())
    assert box["means"].abs().max() <= 0.2 and box["shN"].shape == (100, 3, 3)
    points = init_gaussians(InitConfig(shape="points", n_points=0, path=str(point_cloud(tmp_path))))
    assert points["means"].shape == (6, 3)
    with pytest.raises(UserError, match="init.shape must be one of sphere, box, points; got 'cone'"):
        init_gaussians(InitConfig(shape="cone"))
    with pytest.raises(UserError, match="init.path"):
        init_gaussians(InitConfig(shape="points"))
    with pytest.raises(PlyError, match="no such file"):
        init_gaussians(InitConfig(shape="points", path=str(tmp_path / "missing.ply")))


# ---------------------------------------------------------------------------------------------- sample scene


def test_shipped_sample_scene_is_the_generated_one():
    path = sample_scene_path()
    assert path.is_file() and path.stat().st_size < 300_000
    shipped = read_ply(path)
    generated = make_sample_scene()
    assert shipped.sh_degree == 0 and shipped.num_gaussians == 3000
    for name in generated.keys():
        assert torch.allclose(shipped.splats[name], generated[name], atol=1e-6), name
    # A house centred at the origin, inside the unit ball, facing +x with a brown door there.
    means = generated["means"].detach()
    assert means.norm(dim=-1).max() < 0.6 and means.mean(0).abs().max() < 0.1
    rgb = sh0_to_rgb(generated["sh0"].detach()[:, 0])
    door = (rgb - torch.tensor([0.35, 0.2, 0.1])).abs().max(-1).values < 1e-4
    assert door.sum() > 20 and (means[door, 0] > 0.29).all()
    assert math.isclose(activated(generated)["opacities"].min().item(), 0.9, rel_tol=1e-5)
