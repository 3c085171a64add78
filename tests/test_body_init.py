"""Initial Gaussians on the posed body surface, in the layout of lucidkit.splat.init's initialisers."""

import pytest
import torch

pytest.importorskip("smplx")

from lucidkit.body.init import init_body, sample_surface  # noqa: E402
from lucidkit.body.pose import from_world, load_pose, pose_body  # noqa: E402
from lucidkit.splat.init import init_sphere  # noqa: E402
from lucidkit.splat.scene import sh0_to_rgb


def test_init_on_the_body_surface_matches_the_engine_layout():
    body = pose_body(load_pose("arms-down"))
    splats = init_body(body, 3000, torch.Generator().manual_seed(0))
    reference = init_sphere(10)
    assert set(splats) == set(reference)
    for name in splats:
        assert splats[name].shape[1:] == reference[name].shape[1:] and splats[name].shape[0] == 3000
    assert torch.allclose(torch.sigmoid(splats["opacities"]), torch.tensor(0.1))
    assert torch.allclose(sh0_to_rgb(splats["sh0"]), torch.tensor(0.5))  # neutral grey
    # On the surface: every mean is within a triangle's size of the mesh's vertices (back in the body frame).
    means = from_world(splats["means"].detach())
    assert torch.cdist(means, body.vertices).amin(1).max() < 0.02
    # Scales from nearest-neighbour distances: small against the body, larger where points are sparse.
    scales = splats["scales"].exp()
    assert scales.max() < 0.05 and scales.min() > 1e-4
    # In lucidkit's world the standing body's tall axis is z.
    extent = splats["means"].detach().amax(0) - splats["means"].detach().amin(0)
    assert extent[2] > 1.5 * max(extent[0], extent[1])


def test_surface_samples_are_deterministic_and_spread_by_area():
    body = pose_body(load_pose("t-pose"))
    a, na = sample_surface(body.vertices, body.faces, 4000, torch.Generator().manual_seed(1))
    b, _ = sample_surface(body.vertices, body.faces, 4000, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.allclose(na.norm(dim=1), torch.ones(4000))
    # The torso (|x| < 0.15 in the y-up frame, between hips and shoulders) has far more area than one hand.
    torso = ((a[:, 0].abs() < 0.1) & (a[:, 1] > -0.05) & (a[:, 1] < 0.2)).sum()
    hand = (a[:, 0] > 0.48).sum()
    assert torso > 3 * hand > 0
