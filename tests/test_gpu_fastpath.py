"""GPU tier: the fast path (bf16, channels-last, torch.compile with CUDA graphs) computes the same ISM gradient
as the float32 eager reference, within bf16 tolerance, on random inputs at SD 2.1-base shapes."""

import pytest
import torch


@pytest.mark.gpu
def test_fast_path_ism_gradient_matches_fp32_reference():
    from lucidkit.guidance import GuidanceConfig, ScoreDistillation
    from lucidkit.guidance.schedules import Interval
    from lucidkit.prior import DiffusionPrior

    ref = DiffusionPrior.from_arch("sd21-base", device="cuda", dtype="fp32", seed=0)
    fast = DiffusionPrior.from_arch("sd21-base", device="cuda", dtype="bf16", seed=0)
    fast.enable_fast_path(compile=True)
    cfg = GuidanceConfig(perp_neg=True)
    g_ref, g_fast = ScoreDistillation(ref, "a hamburger", cfg), ScoreDistillation(fast, "a hamburger", cfg)
    gen = torch.Generator().manual_seed(0)
    for t, s in [(700, 600), (300, 220)]:
        z0 = torch.randn(2, 4, 64, 64, generator=gen).cuda()
        noise = torch.randn(2, 4, 64, 64, generator=gen).cuda()
        az = torch.tensor([10.0, 150.0])
        iv = Interval(t=t, s=s, delta=t - s)
        want = g_ref.latent_gradient(z0, az, iv, noise)
        got = g_fast.latent_gradient(z0, az, iv, noise)
        rel = ((got - want).norm() / want.norm()).item()
        assert torch.isfinite(got).all() and rel < 3e-2, rel
