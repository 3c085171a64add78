"""The avatar cases of `lucidkit bench speed` at tiny sizes on CPU: they run the avatar's own objective, whose
updates call the ControlNet with the body's skeleton, and report ms per update with the avatar's own pieces."""

import dataclasses
import json

import pytest
import torch
from click.testing import CliRunner

from lucidkit.commands.cli import cli

pytest.importorskip("smplx")


@pytest.fixture
def controlnet_calls(monkeypatch):
    """Every call of the attached ControlNet: (latent batch, the condition image batch)."""
    from lucidkit.prior.core import DiffusionPrior

    calls = []
    inner = DiffusionPrior._controlnet_residuals

    def counting(self, x, t, emb, cond):
        calls.append((x.shape[0], cond["image"].detach().clone()))
        return inner(self, x, t, emb, cond)

    monkeypatch.setattr(DiffusionPrior, "_controlnet_residuals", counting)
    return calls


def test_avatar_speed_case_runs_and_reports(tmp_path, controlnet_calls):
    out = tmp_path / "speed.json"
    result = CliRunner().invoke(cli, ["bench", "speed", "--arch", "tiny", "--device", "cpu", "--steps", "1",
                                      "--batch", "2", "--gaussians", "300", "--cases", "avatar", "--out", str(out)])
    assert result.exit_code == 0, result.output
    case = json.loads(out.read_text())["cases"][0]
    assert case["case"] == "avatar" and case["arch"] == "tiny" and case["perp_neg"]
    regimes = [case[f"ms_per_update_{k}"] for k in ("early", "mid", "late")]
    assert min(regimes) > 0 and min(regimes) <= case["ms_per_update_recipe"] <= max(regimes)
    pieces = case["breakdown_ms"]
    assert pieces["skeleton_condition"] > 0 and pieces["controlnet_unet_call_B"] > 0
    assert "skeleton_condition" in case["late_update_ms"] and case["controlnet_tflop_per_image"] > 0
    assert controlnet_calls  # the ControlNet ran in the loop
    table = out.with_suffix(".txt").read_text()
    assert "avatar: tiny + a random OpenPose ControlNet" in table and "skeleton_condition" in table


def test_every_avatar_update_conditions_the_target_and_cfg_calls(controlnet_calls):
    """Two loop updates of the benchmarked avatar: each runs the ControlNet for ISM's target (batch B), the CFG call
    (4B with Perp-Neg) and, by default (`control.in_inversion`), every inversion step (batch B), with the skeleton
    drawn for its views (coloured limbs on black)."""
    from lucidkit.bench.speed_avatar import build_avatar
    from lucidkit.optimize import optimize

    B = 2
    prior, guidance, cfg, state, objective, sampler = build_avatar(
        "tiny", torch.device("cpu"), "fp32", B, 32, 300, perp_neg=True, fast=False, low_memory=False)
    assert prior.controlnet is not None
    optimize(state, sampler, objective, dataclasses.replace(cfg.loop, steps=2), cfg.optim)
    batches = [batch for batch, _ in controlnet_calls]
    assert batches.count(4 * B) == 2  # one CFG call per update
    assert batches.count(B) > 2 and set(batches) == {B, 4 * B}  # the target call and the inversion steps
    for _, image in controlnet_calls:
        assert image.shape[1:] == (3, 32, 32) and image.amax() > 0.5 and image.mean() < 0.3
