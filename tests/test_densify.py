"""Densification with gsplat's DefaultStrategy driven by the torch renderer: grow, prune, reset, optimizer state."""

import torch
from gsplat.strategy import DefaultStrategy

from lucidkit.cameras import intrinsics, look_at
from lucidkit.splat.densify import DensifyConfig, RecipeStrategy, make_strategy
from lucidkit.splat.render import render

SIZE = 32
C0 = 0.28209479177387814


def cameras():
    """Two views of the origin from +x and +y, z up."""
    eye = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.5]])
    viewmats = look_at(eye, torch.zeros(2, 3), torch.tensor([[0.0, 0.0, 1.0]]).expand(2, 3))
    return viewmats, intrinsics(torch.full((2,), 0.6), SIZE, SIZE)


def make_params(means, scale, opacity, rgb):
    """A ParameterDict in the engine's layout (raw values) and one Adam per entry."""
    n = means.shape[0]
    params = torch.nn.ParameterDict(
        {
            "means": means.clone(),
            "scales": torch.log(torch.full((n, 3), scale) if isinstance(scale, float) else scale.clone()),
            "quats": torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
            "opacities": torch.logit(torch.full((n,), opacity) if isinstance(opacity, float) else opacity.clone()),
            "sh0": ((rgb - 0.5) / C0)[:, None, :].clone(),
            "shN": torch.zeros(n, 0, 3),
        }
    )
    optimizers = {k: torch.optim.Adam([p], lr=1e-3, eps=1e-15) for k, p in params.items()}
    return params, optimizers


def draw(params, viewmats, Ks):
    return render(
        params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]),
        0.5 + C0 * params["sh0"][:, 0, :], viewmats, Ks, SIZE, SIZE, backgrounds=torch.ones(2, 3),
    )


def train_step(strategy, state, params, optimizers, step, target, viewmats, Ks):
    out = draw(params, viewmats, Ks)
    strategy.step_pre_backward(params, optimizers, state, step, out.info)
    loss = ((out.rgb - target) ** 2).mean()
    loss.backward()
    strategy.step_post_backward(params, optimizers, state, step, out.info)
    for opt in optimizers.values():
        opt.step()
        opt.zero_grad(set_to_none=True)
    return loss.item()


def quiet_config(**overrides):
    """Refine every 5 steps from step 0; no growth unless the test lowers the threshold."""
    cfg = dict(refine_every=5, start_iter=0, stop_iter=1000, grad_threshold=1e9, opacity_reset_every=1000)
    cfg.update(overrides)
    return DensifyConfig(**cfg)


def assert_optimizer_consistent(params, optimizers):
    for name, p in params.items():
        (group_param,) = optimizers[name].param_groups[0]["params"]
        assert group_param is p, name
        for value in optimizers[name].state[p].values():
            if torch.is_tensor(value) and value.dim() > 0:
                assert value.shape == p.shape, name


def test_recipe_values_map_onto_gsplat():
    strategy = make_strategy(DensifyConfig(), render_width=64)
    assert isinstance(strategy, DefaultStrategy)
    assert strategy.grow_grad2d == 7.5e-4 and strategy.grow_scale3d == 0.0105 and strategy.prune_opa == 0.005
    assert strategy.refine_every == 100 and strategy.refine_start_iter == 100 and strategy.refine_stop_iter == 3000
    assert strategy.reset_every == 300 and strategy.prune_scale3d == 0.35
    assert strategy.prune_scale2d == 20 / 64  # 20 px at a 64 px render
    assert make_strategy(DensifyConfig(), render_width=512).prune_scale2d == 20 / 512
    assert strategy.refine_scale2d_stop_iter == 3000 and strategy.grow_scale2d == float("inf")


def test_gsplat_default_strategy_never_resets_opacity_but_ours_does_at_step_300():
    viewmats, Ks = cameras()
    target = torch.ones(2, SIZE, SIZE, 3)
    means = torch.randn(20, 3, generator=torch.Generator().manual_seed(0)) * 0.3
    cfg = DensifyConfig(grad_threshold=1e9)  # the recipe schedule, without growth so only the reset acts

    for strategy_cls, expect_reset in ((DefaultStrategy, False), (RecipeStrategy, True)):
        strategy = make_strategy(cfg, SIZE)
        if strategy_cls is DefaultStrategy:  # the same settings on gsplat's own class
            strategy = DefaultStrategy(**{k: getattr(strategy, k) for k in DefaultStrategy.__dataclass_fields__})
        params, optimizers = make_params(means, 0.1, 0.5, torch.full((20, 3), 0.3))
        state = strategy.initialize_state(scene_scale=1.0)
        train_step(strategy, state, params, optimizers, 299, target, viewmats, Ks)
        assert torch.sigmoid(params["opacities"]).min() > 0.3  # no reset at step 299
        train_step(strategy, state, params, optimizers, 300, target, viewmats, Ks)
        opacity = torch.sigmoid(params["opacities"]).detach()
        if expect_reset:
            # Reset to at most 0.01, then one Adam step with zeroed moments (lr 1e-3 in logit space).
            assert opacity.max() < 0.0101
        else:
            assert opacity.min() > 0.3
        assert_optimizer_consistent(params, optimizers)


def test_high_gradient_gaussians_grow_and_settled_ones_do_not():
    viewmats, Ks = cameras()
    # The lower cluster is wrong (colours and positions); the upper one already matches the target.
    g = torch.Generator().manual_seed(1)
    lower = torch.randn(8, 3, generator=g) * 0.15 + torch.tensor([0.0, 0.0, -0.6])
    upper = torch.randn(8, 3, generator=g) * 0.15 + torch.tensor([0.0, 0.0, 0.6])
    colour = torch.full((16, 3), 0.5)
    true_colour = torch.cat([torch.rand(8, 3, generator=g), colour[8:]])
    truth, _ = make_params(torch.cat([lower + 0.1, upper]), 0.03, 0.9, true_colour)
    with torch.no_grad():
        target = draw(truth, viewmats, Ks).rgb

    params, optimizers = make_params(torch.cat([lower, upper]), 0.03, 0.9, colour)
    strategy = make_strategy(quiet_config(grad_threshold=2e-4, clone_split_scale=0.02), SIZE)
    state = strategy.initialize_state(scene_scale=1.0)
    for step in range(1, 6):
        train_step(strategy, state, params, optimizers, step, target, viewmats, Ks)

    means = params["means"].detach()
    assert means.shape[0] > 16
    assert (means[:, 2] < 0).sum() > 8  # the mismatched cluster gained Gaussians
    assert (means[:, 2] > 0).sum() == 8  # the matching cluster did not
    assert_optimizer_consistent(params, optimizers)
    train_step(strategy, state, params, optimizers, 6, target, viewmats, Ks)  # Adam still steps afterwards


def test_transparent_and_oversized_gaussians_are_pruned():
    viewmats, Ks = cameras()
    target = torch.ones(2, SIZE, SIZE, 3)
    # #1 is nearly transparent, #2 too big in the world (0.5 > 0.35), #3 small enough in the world (0.3) but so
    # close to camera 0 that its screen radius there (~26 px) exceeds 20 px (camera 1 sees it at ~15 px: the
    # largest radius over the batch's cameras must count).
    means = torch.tensor([[0.0, -0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.5, 0.3], [2.0, 0.3, -0.2]])
    scales = torch.tensor([0.05, 0.05, 0.5, 0.3])[:, None].repeat(1, 3)
    opacities = torch.tensor([0.9, 0.002, 0.9, 0.9])
    params, optimizers = make_params(means, scales, opacities, torch.full((4, 3), 0.2))
    strategy = make_strategy(quiet_config(opacity_reset_every=7), SIZE)
    state = strategy.initialize_state(scene_scale=1.0)

    train_step(strategy, state, params, optimizers, 5, target, viewmats, Ks)  # before the first reset
    assert params["means"].shape[0] == 3  # only the transparent one went
    for step in (6, 7, 8, 9):
        train_step(strategy, state, params, optimizers, step, target, viewmats, Ks)
    assert params["means"].shape[0] == 3  # step 7 reset opacities to 0.01 (still above 0.005)
    assert strategy.prune_scale2d * SIZE == 20.0
    train_step(strategy, state, params, optimizers, 10, target, viewmats, Ks)  # after the reset: size pruning
    remaining = params["means"].detach()
    assert remaining.shape[0] == 1
    assert torch.allclose(remaining[0], means[0], atol=0.05)
    assert_optimizer_consistent(params, optimizers)
    train_step(strategy, state, params, optimizers, 11, target, viewmats, Ks)
