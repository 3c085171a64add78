"""GPU tier: the "graphs", "regional" and "encoder" ways of running the prior (`prior.compile`, issue 24) compute
what the eager prior computes — the UNet's noise prediction at the loop's batch sizes, replay after replay, and the VAE
encoder's latents and input gradient — at SD 2.1-base shapes with random weights, in float32 so that only
cuDNN's choice of algorithm (TF32 allowed) and the capture can differ."""

import pytest
import torch


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["graphs", "regional", "encoder"])
def test_graphed_modes_match_the_eager_prior(mode):
    from lucidkit.prior.random_weights import random_prior

    eager = random_prior("sd21-base", device="cuda", dtype="fp32", seed=0)
    graphed = random_prior("sd21-base", device="cuda", dtype="fp32", seed=0)
    graphed.enable_fast_path(compile=mode)
    assert graphed.compile_mode == mode and graphed.source["compile_mode"] == mode
    gen = torch.Generator("cuda").manual_seed(0)
    emb = eager.embed(["a hamburger", ""])
    outs = []
    for batch in (4, 8, 4, 8):  # inversion-sized and CFG-sized calls, each signature replayed a second time
        x = torch.randn(batch, 4, 64, 64, device="cuda", generator=gen)
        t = torch.randint(20, 980, (batch,), device="cuda", generator=gen)
        e = emb.repeat(batch // 2, 1, 1)
        want, got = eager.predict_noise(x, t, e), graphed.predict_noise(x, t, e)
        outs.append(got)
        assert ((got - want).norm() / want.norm()).item() < 1e-2
    assert graphed.unet.replays == 4  # every call replayed a graph (captured at the first call of each batch size)
    assert not torch.equal(outs[0], outs[2])  # a later replay returned its own result, not the static buffer

    images = torch.rand(4, 3, 512, 512, device="cuda", generator=gen)
    res = {}
    for name, prior in (("eager", eager), ("graphed", graphed)):
        for _ in range(2):  # the second call replays the encoder's graphs
            x = images.clone().requires_grad_(True)
            z = prior.encode_images(x, generator=torch.Generator("cuda").manual_seed(1))
            z.square().sum().backward()
        res[name] = (z.detach(), x.grad)
    for a, b in zip(res["eager"], res["graphed"], strict=True):
        assert ((a - b).norm() / a.norm()).item() < 1e-2
    assert graphed.vae.encoder.replays >= 1
