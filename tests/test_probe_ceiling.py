"""`probe.py ceiling` scoring: the truth matched against itself through the same code path as the prior's samples."""

import torch

from lucidkit.toyworld.captions import ground_truth
from lucidkit.toyworld.data import render_splats
from tools.quality.probe import best_matches, grey_ball, grid_cameras

# One camera per (azimuth, fovy); the "samples" are the truth seen from these very cameras on assorted backgrounds.
CAMS = grid_cameras((0.0, 45.0, 180.0), (75.0,), (0.39, 0.53))
BACKGROUNDS = torch.tensor([[1.0, 1.0, 1.0], [0.2, 0.6, 0.3], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.8, 0.5, 0.9],
                            [0.0, 0.0, 0.0]])


def _truth(prompt):
    splats = ground_truth(prompt)
    with torch.no_grad():
        premultiplied, alpha = render_splats(splats, CAMS)
        samples = render_splats(splats, CAMS, BACKGROUNDS)[0]
    return samples, premultiplied, alpha[..., 0]


def test_the_truth_at_its_own_camera_is_found_on_any_background():
    samples, premultiplied, alpha = _truth("a house")
    scores = best_matches(samples, premultiplied, alpha)  # [6, 4]: psnr, iou at that camera, best iou, size ratio
    assert (scores[:, 0] > 40).all()  # the truth composited over the sample's own background matches it exactly
    # Not 1.0: a sample's mask is where its colour departs from the background (it has no alpha), which takes in
    # the soft edge that the truth's alpha > 0.5 leaves out.
    assert (scores[:, 1] > 0.9).all() and (scores[:, 1] == scores[:, 2]).all()
    assert ((scores[:, 3] - 1).abs() < 0.1).all()


def test_a_house_may_not_borrow_another_view_s_camera():
    samples, premultiplied, alpha = _truth("a house")
    front_only = CAMS.azimuth_deg.abs() < 1  # the two azimuth-0 cameras
    scores = best_matches(samples, premultiplied, alpha, allowed=front_only)
    assert (scores[:2, 0] > 40).all()  # the front views are found
    assert (scores[4:, 0] < 20).all()  # the back views, held to front cameras, are not


def test_the_grey_ball_scores_below_the_truth():
    samples, premultiplied, alpha = _truth("a red cube")
    with torch.no_grad():
        ball = render_splats(grey_ball(), CAMS, BACKGROUNDS)[0]
    assert (best_matches(ball, premultiplied, alpha)[:, 0] < 15).all()
    assert (best_matches(samples, premultiplied, alpha)[:, 0] > 40).all()
