"""ISM / SDS / Perp-Neg against the formulas of docs/ism.md evaluated directly in float64."""

import math

import pytest
import torch

from lucidkit.guidance import GuidanceConfig, ScoreDistillation, ism, perpneg, schedules
from lucidkit.toyworld.captions import view_of_azimuth


def sd_alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2  # scaled-linear
    return torch.cumprod(1 - betas, 0)


class FakePrior:
    """A stand-in prior in float64 with a nonlinear, prompt- and time-dependent ε and a call log."""

    def __init__(self):
        self.alphas_cumprod = sd_alphas_cumprod()
        self.steps_offset = 1
        self.calls = []  # (batch, timestep)
        self.embeddings = []  # the emb [B, L, D] of each call

    def embed(self, texts):
        rows = []
        for text in texts:
            g = torch.Generator().manual_seed(sum(map(ord, text)) + len(text))
            rows.append(torch.randn(3, 4, generator=g, dtype=torch.float64))
        return torch.stack(rows)  # [n, L=3, D=4]

    def eps_ref(self, x, t, emb):
        """ε for one sample: x [C, h, w], t int, emb [L, D]."""
        code = emb.sum(0)  # [D]
        return torch.tanh(0.7 * x + code[: x.shape[0], None, None] * 0.3 + t / 1000.0)

    def predict_noise(self, x, t, emb, cond=None):
        self.calls.append((x.shape[0], int(t[0])))
        self.embeddings.append(emb)
        return torch.stack([self.eps_ref(x[i], int(t[i]), emb[i]) for i in range(x.shape[0])])

    def encode_images(self, images, generator=None):
        return images[:, :2] * 2 - 1  # a differentiable stand-in "encoder"


def test_ddim_step_is_invertible_with_fixed_noise():
    a = sd_alphas_cumprod()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    eps = torch.randn_like(x)
    up = ism.ddim_step(x, eps, a[100], a[600])
    assert torch.allclose(ism.ddim_step(up, eps, a[600], a[100]), x, atol=1e-10)


def test_inversion_lands_where_ddim_says():
    """With an oracle ε (the true noise of x), DDIM inversion reaches exactly sqrt(ᾱ_s) z0 + sqrt(1-ᾱ_s) n."""
    a = sd_alphas_cumprod()
    z0 = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    n = torch.randn_like(z0)
    oracle = lambda x, v: (x - a[v].sqrt() * z0) / (1 - a[v]).sqrt()
    for s, stride, steps in [(450, 200, 5), (977, 200, 5), (300, 1000, 1), (35, 200, 5)]:
        x_s = ism.ddim_invert(z0, oracle, a, s, noise=n, stride=stride, max_steps=steps)
        assert torch.allclose(x_s, a[s].sqrt() * z0 + (1 - a[s]).sqrt() * n, atol=1e-9)


def test_inversion_timesteps_follow_the_release():
    assert schedules.inversion_timesteps(450, 1, 200, 5) == [1, 201, 401, 450]
    assert schedules.inversion_timesteps(980, 1, 200, 5) == [1, 201, 401, 601, 801, 980]
    assert schedules.inversion_timesteps(980, 1, 200, 2) == [580, 780, 980]  # short budget starts higher
    assert schedules.inversion_timesteps(300, 1, 1000, 1) == [1, 300]


def test_schedules_anneal_as_the_recipe():
    g = torch.Generator().manual_seed(0)
    early = [schedules.sample_interval(0, g) for _ in range(400)]
    late = [schedules.sample_interval(5000, g) for _ in range(400)]
    assert all(21 <= iv.t <= 980 for iv in early) and max(iv.t for iv in early) > 900
    assert all(21 <= iv.t <= 500 for iv in late)
    assert all(iv.delta == 100 for iv in early) and all(iv.delta == 80 for iv in late)
    assert all(iv.s == max(iv.t - 1 - iv.delta, 0) + 1 for iv in early + late)  # values = index + 1
    assert schedules.interval_size(750, 80, 100, 1500) == 90
    assert schedules.timestep_upper(750, 980, 500, 1500) == 740


def direct_ism_gradient(prior, z0, az, t, s, noise, cfg, perp_neg):
    """docs/ism.md steps 2–5, written out per sample without the library's helpers."""
    a = prior.alphas_cumprod
    texts = {k: v for k, v in zip(["front", "side", "back", "neg", "empty"],
                                  prior.embed([f"P, front view", f"P, side view", f"P, back view",
                                               cfg.negative_prompt, ""]))}
    grads = []
    for i in range(z0.shape[0]):
        # step 2: perturb to timestep 1, or xs_start (capped at s), or the budget's start; invert in strides with ∅
        start = max(s - cfg.xs_delta_t * cfg.xs_inv_steps, min(max(cfg.xs_start, 1), s))
        x = a[start].sqrt() * z0[i] + (1 - a[start]).sqrt() * noise[i]
        v = start
        while v < s:
            nxt = min(v + cfg.xs_delta_t, s)
            ep = prior.eps_ref(x, v, texts["empty"])
            x = a[nxt].sqrt() * (x - (1 - a[v]).sqrt() * ep) / a[v].sqrt() + (1 - a[nxt]).sqrt() * ep
            v = nxt
        # step 3
        e_s = prior.eps_ref(x, s, texts["empty"])
        x_t = a[t].sqrt() * (x - (1 - a[s]).sqrt() * e_s) / a[s].sqrt() + (1 - a[t]).sqrt() * e_s
        # view-interpolated positive embedding
        ang = (az[i] + 180) % 360 - 180
        if abs(ang) < 90:
            r = 1 - abs(ang) / 90
            pos = r * texts["front"] + (1 - r) * texts["side"]
            negs = [(texts["front"], 0.0 if r > 0.8 else -2 * math.exp(-2 * r)),
                    (texts["side"], 0.0 if r < 0.2 else -2 * math.exp(-10 * (1 - r)))]
        else:
            r = 1 - (abs(ang) - 90) / 90
            pos = r * texts["side"] + (1 - r) * texts["back"]
            negs = [(texts["side"], 0.0 if r > 0.8 else -1 * math.exp(-10 * r)), (texts["front"], -2.0)]
        # step 4: CFG with the negative prompt as the unconditional branch (+ Perp-Neg)
        eu = prior.eps_ref(x_t, t, texts["neg"])
        d_pos = prior.eps_ref(x_t, t, pos) - eu
        d = d_pos.clone()
        if perp_neg:
            for emb, w in negs:
                di = prior.eps_ref(x_t, t, emb) - eu
                proj = (di * d_pos).sum() / (d_pos * d_pos).sum() * d_pos
                d = d + w * (di - proj)
        eps_hat = eu + cfg.guidance_scale * d
        # step 5
        grads.append(cfg.lambda_guidance * ((1 - a[t]) / a[t]).sqrt() * (eps_hat - e_s))
    return torch.stack(grads)


@pytest.mark.parametrize("xs_start", [0, 250])
@pytest.mark.parametrize("perp_neg", [False, True])
@pytest.mark.parametrize("t,s", [(700, 600), (300, 220), (60, 1)])
def test_ism_gradient_equals_the_formula(perp_neg, t, s, xs_start):
    prior = FakePrior()
    cfg = GuidanceConfig(negative_prompt="blurry", perp_neg=perp_neg, xs_start=xs_start)
    guide = ScoreDistillation(prior, "P", cfg)
    z0 = torch.randn(4, 2, 4, 4, dtype=torch.float64)
    noise = torch.randn_like(z0)
    az = torch.tensor([0.0, 30.0, -120.0, 179.0], dtype=torch.float64)
    got = guide.latent_gradient(z0, az, schedules.Interval(t=t, s=s, delta=t - s), noise)
    want = direct_ism_gradient(prior, z0, az.tolist(), t, s, noise, cfg, perp_neg)
    assert torch.allclose(got, want, atol=1e-10, rtol=1e-9)
    # UNet budget: ⌈s/δ_S⌉ inversion calls of batch B, one of B for e_s, one of 2B (4B with Perp-Neg)
    inv = len(schedules.inversion_timesteps(s, min(max(xs_start, 1), s), cfg.xs_delta_t, cfg.xs_inv_steps)) - 1
    assert [b for b, _ in prior.calls] == [4] * (inv + 1) + [16 if perp_neg else 8]


def test_sds_gradient_equals_the_formula():
    prior = FakePrior()
    for weighting, w in [("ism", lambda a: ((1 - a) / a).sqrt()), ("dreamfusion", lambda a: 1 - a)]:
        cfg = GuidanceConfig(method="sds", weighting=weighting, view_prompts=False, lambda_guidance=1.0)
        guide = ScoreDistillation(prior, "P", cfg)
        z0 = torch.randn(2, 2, 4, 4, dtype=torch.float64)
        n = torch.randn_like(z0)
        t = 400
        got = guide.latent_gradient(z0, torch.zeros(2), schedules.Interval(t=t, s=t, delta=0), n)
        a = prior.alphas_cumprod[t]
        x_t = a.sqrt() * z0 + (1 - a).sqrt() * n
        plain, neg = prior.embed(["P", ""])
        want = torch.stack([
            w(a) * (prior.eps_ref(x_t[i], t, neg) + 7.5 * (prior.eps_ref(x_t[i], t, plain)
                                                          - prior.eps_ref(x_t[i], t, neg)) - n[i])
            for i in range(2)
        ])
        assert torch.allclose(got, want, atol=1e-10)


def test_dds_gradient_is_the_difference_of_target_and_source_scores():
    prior = FakePrior()
    cfg = GuidanceConfig(method="dds", view_prompts=False, lambda_guidance=1.0, negative_prompt="blurry")
    guide = ScoreDistillation(prior, "P", cfg, source_prompt="S")
    z0, ref = torch.randn(2, 2, 4, 4, dtype=torch.float64), torch.randn(2, 2, 4, 4, dtype=torch.float64)
    n = torch.randn_like(z0)
    t = 500
    got = guide.latent_gradient(z0, torch.zeros(2), schedules.Interval(t=t, s=t, delta=0), n, reference_latents=ref)
    a = prior.alphas_cumprod[t]
    x_t, x_ref = a.sqrt() * z0 + (1 - a).sqrt() * n, a.sqrt() * ref + (1 - a).sqrt() * n
    plain, source, neg = prior.embed(["P", "S", "blurry"])
    cfg_eps = lambda x, e: prior.eps_ref(x, t, neg) + 7.5 * (prior.eps_ref(x, t, e) - prior.eps_ref(x, t, neg))
    want = torch.stack([((1 - a) / a).sqrt() * (cfg_eps(x_t[i], plain) - cfg_eps(x_ref[i], source)) for i in range(2)])
    assert torch.allclose(got, want, atol=1e-10)
    assert [b for b, _ in prior.calls] == [8]  # both images' CFG branches in one UNet call
    # an unedited image (z0 = reference, same prompt) gets no gradient at all
    same = ScoreDistillation(prior, "P", cfg, source_prompt="P")
    zero = same.latent_gradient(ref, torch.zeros(2), schedules.Interval(t=t, s=t, delta=0), n, reference_latents=ref)
    assert zero.abs().max() < 1e-12
    with pytest.raises(ValueError, match="source images"):
        guide.latent_gradient(z0, torch.zeros(2), schedules.Interval(t=t, s=t, delta=0), n)


def test_editing_without_a_negative_prompt_steers_from_the_source():
    prior = FakePrior()
    cfg = GuidanceConfig(method="dds", view_prompts=False, lambda_guidance=1.0)
    guide = ScoreDistillation(prior, "P", cfg, source_prompt="S")
    z0, ref = torch.randn(2, 2, 4, 4, dtype=torch.float64), torch.randn(2, 2, 4, 4, dtype=torch.float64)
    n, t = torch.randn_like(z0), 400
    got = guide.latent_gradient(z0, torch.zeros(2), schedules.Interval(t=t, s=t, delta=0), n, reference_latents=ref)
    a = prior.alphas_cumprod[t]
    x_t, x_ref = a.sqrt() * z0 + (1 - a).sqrt() * n, a.sqrt() * ref + (1 - a).sqrt() * n
    plain, source = prior.embed(["P", "S"])
    e = lambda x, emb: prior.eps_ref(x, t, emb)
    want = torch.stack([((1 - a) / a).sqrt() * (e(x_t[i], source) + 7.5 * (e(x_t[i], plain) - e(x_t[i], source))
                                                - e(x_ref[i], source)) for i in range(2)])
    assert torch.allclose(got, want, atol=1e-10)
    assert [b for b, _ in prior.calls] == [6]  # unconditional = source: 3 branches, not 4


def test_ism_with_a_source_prompt_inverts_with_the_source():
    prior = FakePrior()
    cfg = GuidanceConfig(view_prompts=False)
    z0, noise = torch.randn(2, 2, 4, 4, dtype=torch.float64), torch.randn(2, 2, 4, 4, dtype=torch.float64)
    iv = schedules.Interval(t=300, s=220, delta=80)
    edit = ScoreDistillation(prior, "P", cfg, source_prompt="S")
    got = edit.latent_gradient(z0, torch.zeros(2), iv, noise)
    plain = ScoreDistillation(prior, "P", cfg).latent_gradient(z0, torch.zeros(2), iv, noise)
    assert not torch.allclose(got, plain)
    # the same gradient as the formula with every inversion call conditioned on "S" instead of ""
    prior.embeddings.clear()
    edit.latent_gradient(z0, torch.zeros(2), iv, noise)
    source = prior.embed(["S"])[0]
    inversion = prior.embeddings[:-1]  # every call before the CFG call
    assert len(inversion) >= 2 and all(torch.equal(e, source.expand_as(e)) for e in inversion)


def test_latent_loss_injects_exactly_the_gradient():
    z0 = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    grad = torch.randn_like(z0)
    loss = ism.latent_loss(z0, grad)
    loss.backward()
    assert torch.allclose(z0.grad, grad)
    assert math.isclose(loss.item(), 0.5 * (grad**2).sum().item(), rel_tol=1e-9)  # a sum, not a mean


def test_nan_gradients_become_zero():
    a = torch.tensor(0.5, dtype=torch.float64)
    eps = torch.tensor([[float("nan"), 1.0, float("inf")]], dtype=torch.float64)
    out = ism.score_gradient(eps, torch.zeros_like(eps), a, 0.1)
    assert torch.isfinite(out).all() and out[0, 0] == 0 and out[0, 2] == 0


def test_view_embeddings_interpolate_by_azimuth():
    f, s, b = (torch.full((1, 3, 4), v, dtype=torch.float64) for v in (1.0, 2.0, 3.0))
    out = perpneg.view_embeddings(torch.tensor([0.0, 45.0, 90.0, -90.0, 135.0, 180.0, -180.0, 360.0]), f, s, b)
    assert out[:, 0, 0].tolist() == pytest.approx([1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 1.0])
    az = torch.tensor([0.0, 44.0, 46.0, -90.0, 134.0, 136.0, -170.0, 400.0])
    hard = perpneg.view_embeddings(az, f, s, b, interpolate=False)[:, 0, 0].tolist()
    assert hard == [1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 1.0]
    # the toy world's captions follow the same rule, so the engine asks for the view the prior learned
    assert [("front", "side", "back").index(view_of_azimuth(a)) + 1.0 for a in az.tolist()] == hard


def test_perpendicular_component_is_orthogonal():
    x, y = torch.randn(3, 4, 5, 5, dtype=torch.float64), torch.randn(3, 4, 5, 5, dtype=torch.float64)
    p = perpneg.perpendicular(x, y)
    assert torch.allclose((p * y).flatten(1).sum(1), torch.zeros(3, dtype=torch.float64), atol=1e-10)


def test_end_to_end_loss_backpropagates_into_images():
    prior = FakePrior()
    guide = ScoreDistillation(prior, "P", GuidanceConfig())
    images = torch.rand(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    loss, logs = guide.loss(images, torch.tensor([0.0, 90.0]), step=10, generator=torch.Generator().manual_seed(1))
    loss.backward()
    assert images.grad is not None and images.grad[:, :2].abs().sum() > 0
    assert 21 <= logs["t"] <= 980 and logs["s"] < logs["t"]


@pytest.mark.parametrize("field, value, words", [
    ("method", "foo", "guidance.method"), ("refine_strength", 1.5, "guidance.refine_strength"),
    ("refine_steps", 0, "guidance.refine_steps"), ("refine_from", -1, "guidance.refine_from"),
])
def test_unusable_guidance_settings_get_one_clear_error(field, value, words):
    from lucidkit.errors import UserError

    with pytest.raises(UserError, match=words):
        ScoreDistillation(FakePrior(), "P", GuidanceConfig(**{field: value}))
