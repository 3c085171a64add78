"""Cameras: orientation conventions, recipe ranges, progressive widening, determinism."""

import math

import pytest
import torch

from lucidkit.cameras import (
    CameraConfig,
    OrbitSampler,
    eval_ring,
    intrinsics,
    look_at,
    orbit_cameras,
    ranges_at,
    scaled,
    turntable,
)


def project(cams, points):
    """Pixel coordinates [C, P, 2] and camera depths [C, P] of world points [P, 3]."""
    cam = torch.einsum("cij,pj->cpi", cams.viewmats[:, :3, :3], points) + cams.viewmats[:, None, :3, 3]
    uvw = torch.einsum("cij,cpj->cpi", cams.Ks, cam)
    return uvw[..., :2] / uvw[..., 2:], cam[..., 2]


def test_azimuth_zero_looks_at_the_front_from_plus_x():
    cams = orbit_cameras(torch.tensor([0.0]), torch.tensor([90.0]), torch.tensor([4.0]), torch.tensor([0.5]), 64, 48)
    assert cams.camera_centers()[0].tolist() == pytest.approx([4.0, 0.0, 0.0], abs=1e-6)
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5], [1.0, 0.0, 0.0]])
    uv, depth = project(cams, points)
    assert uv[0, 0].tolist() == pytest.approx([32.0, 24.0], abs=1e-5)  # the origin is at the image centre
    assert uv[0, 1, 0] > 32.0  # world +y appears on the image's right side
    assert uv[0, 2, 1] < 24.0  # world +z appears at the top
    assert depth[0, 3] < depth[0, 0]  # the object's front (+x) is nearer to this camera


def test_azimuth_increases_counter_clockwise_seen_from_above():
    cams = orbit_cameras(
        torch.tensor([90.0, 180.0, -90.0]), torch.full((3,), 90.0), torch.full((3,), 4.0), torch.full((3,), 0.5),
        32, 32,
    )
    centres = cams.camera_centers()
    assert centres[0].tolist() == pytest.approx([0.0, 4.0, 0.0], abs=1e-5)
    assert centres[1].tolist() == pytest.approx([-4.0, 0.0, 0.0], abs=1e-5)
    assert centres[2].tolist() == pytest.approx([0.0, -4.0, 0.0], abs=1e-5)
    assert cams.azimuth_deg[1].item() == -180.0  # wrapped to [-180, 180)


def test_polar_angle_is_measured_from_up():
    cams = orbit_cameras(torch.tensor([0.0]), torch.tensor([45.0]), torch.tensor([2.0]), torch.tensor([0.5]), 32, 32)
    assert cams.camera_centers()[0].tolist() == pytest.approx([math.sqrt(2), 0.0, math.sqrt(2)], abs=1e-5)


def test_look_at_is_a_rigid_transform_that_maps_target_to_the_optical_axis():
    eye = torch.tensor([[1.0, 2.0, 3.0], [-2.0, 0.5, 0.1]])
    target = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.0, 0.0]])
    viewmats = look_at(eye, target, torch.tensor([[0.0, 0.0, 1.0]]).expand(2, 3))
    rot = viewmats[:, :3, :3]
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(2), atol=1e-6)
    target_cam = (rot @ target[..., None])[..., 0] + viewmats[:, :3, 3]
    assert torch.allclose(target_cam[:, :2], torch.zeros(2, 2), atol=1e-6)
    assert torch.allclose(target_cam[:, 2], (target - eye).norm(dim=-1), atol=1e-6)


def test_intrinsics_field_of_view():
    Ks = intrinsics(torch.tensor([0.5]), 64, 32)
    # A point at the top edge of the vertical field of view projects to row 0.
    assert (16 - Ks[0, 1, 1] * math.tan(0.25)).item() == pytest.approx(0.0, abs=1e-5)
    assert Ks[0, 0, 0] == Ks[0, 1, 1] and Ks[0, 0, 2] == 32 and Ks[0, 1, 2] == 16


def test_samples_respect_the_recipe_ranges():
    cfg = CameraConfig()
    cams = OrbitSampler(cfg, 64, 64).sample(512, 0, torch.Generator().manual_seed(0))
    assert len(cams) == 512 and cams.viewmats.shape == (512, 4, 4) and cams.Ks.shape == (512, 3, 3)
    for values, (lo, hi) in (
        (cams.radius, cfg.radius_range),
        (cams.fovy_rad, cfg.fovy_range_rad),
        (cams.polar_deg, cfg.polar_range_deg),
        (cams.azimuth_deg, cfg.azimuth_range_deg),
    ):
        assert values.min() >= lo and values.max() <= hi
        assert values.max() - values.min() > 0.8 * (hi - lo)  # the range is actually used
    # Jitter stays small: every camera still looks close to the centre and sits near its nominal distance.
    dist = cams.camera_centers().norm(dim=-1)
    assert torch.all((dist - cams.radius).abs() < 0.05)
    uv, _ = project(cams, torch.zeros(1, 3))
    assert torch.all((uv[:, 0] - 32).abs() < 8)  # target jitter 0.05: a few pixels at most


def test_ranges_widen_stepwise_every_500_iterations_until_2500():
    cfg = CameraConfig()
    assert ranges_at(cfg, 0) == ranges_at(cfg, 499) == (cfg.radius_range, cfg.fovy_range_rad)
    radius, fovy = ranges_at(cfg, 500)
    assert radius == pytest.approx((5.2 + 0.2 * (3.5 - 5.2), 5.5 + 0.2 * (5.0 - 5.5)))
    assert fovy == pytest.approx((0.32 + 0.2 * (0.16 - 0.32), 0.60))
    assert ranges_at(cfg, 1499) == ranges_at(cfg, 1000)
    assert ranges_at(cfg, 2499)[0][0] > 3.5
    radius, fovy = ranges_at(cfg, 2500)
    assert radius == pytest.approx(cfg.final_radius_range) and fovy == pytest.approx(cfg.final_fovy_range_rad)
    assert ranges_at(cfg, 10_000) == ranges_at(cfg, 2500)
    late = OrbitSampler(cfg, 64, 64).sample(512, 3000, torch.Generator().manual_seed(0))
    assert late.radius.min() < 3.7 and late.fovy_rad.min() < 0.2


def test_sampling_is_deterministic_given_the_generator():
    sampler = OrbitSampler(CameraConfig(), 64, 64)
    a = sampler.sample(4, 10, torch.Generator().manual_seed(123))
    b = sampler.sample(4, 10, torch.Generator().manual_seed(123))
    c = sampler.sample(4, 10, torch.Generator().manual_seed(124))
    assert torch.equal(a.viewmats, b.viewmats) and torch.equal(a.azimuth_deg, b.azimuth_deg)
    assert not torch.equal(a.viewmats, c.viewmats)


def test_eval_ring_and_turntable():
    cfg = CameraConfig()
    ring = eval_ring(4, cfg, 32, 32)
    assert ring.azimuth_deg.tolist() == pytest.approx([0.0, 90.0, -180.0, -90.0])
    assert torch.allclose(ring.radius, torch.full((4,), 3.5)) and torch.allclose(ring.polar_deg, torch.full((4,), 90.0))
    assert torch.allclose(ring.fovy_rad, torch.full((4,), 0.55))
    assert ring.camera_centers()[0].tolist() == pytest.approx([3.5, 0.0, 0.0], abs=1e-5)
    video = turntable(30, cfg, 32, 32)
    assert len(video) == 30 and torch.allclose(video.polar_deg, torch.full((30,), 80.0))
    assert video.camera_centers()[:, 2].min() > 0  # slightly from above


def test_scaled_fits_the_orbit_to_another_scene():
    cfg = scaled(CameraConfig(), 2.0, (1.0, -1.0, 0.5))
    ring = eval_ring(2, cfg, 32, 32)
    assert ring.camera_centers()[0].tolist() == pytest.approx([1.0 + 7.0, -1.0, 0.5], abs=1e-5)
    uv, _ = project(ring, torch.tensor([[1.0, -1.0, 0.5]]))
    assert uv[:, 0].tolist() == [pytest.approx([16.0, 16.0], abs=1e-4)] * 2
    cams = OrbitSampler(cfg, 32, 32).sample(64, 0, torch.Generator().manual_seed(0))
    assert cams.radius.min() >= 10.4 and cams.radius.max() <= 11.0


def test_batch_indexing_and_device_move():
    cams = eval_ring(4, CameraConfig(), 32, 32)
    one = cams[1]
    assert len(one) == 1 and one.azimuth_deg.item() == pytest.approx(90.0)
    assert len(cams.to("cpu")) == 4


def test_azimuth_spread_shows_every_side_in_one_batch():
    """`camera.azimuth_spread`: a batch of 4 faces front, both sides and back (90° apart from one random start); the
    other draws are the same as without it."""
    plain = OrbitSampler(CameraConfig(), 64, 64).sample(4, 0, torch.Generator().manual_seed(3))
    spread = OrbitSampler(CameraConfig(azimuth_spread=True), 64, 64).sample(4, 0, torch.Generator().manual_seed(3))
    gaps = torch.remainder(spread.azimuth_deg.roll(-1) - spread.azimuth_deg, 360.0)
    assert torch.allclose(gaps, torch.full((4,), 90.0), atol=1e-3)
    assert ((spread.azimuth_deg >= -180) & (spread.azimuth_deg < 180)).all()
    assert float(spread.azimuth_deg[0]) == pytest.approx(float(plain.azimuth_deg[0]), abs=1e-4)
    assert torch.equal(spread.polar_deg, plain.polar_deg) and torch.equal(spread.radius, plain.radius)
