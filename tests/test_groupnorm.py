"""The channels-last GroupNorm of the CUDA fast path is the same function as nn.GroupNorm (values and gradients)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lucidkit.prior.groupnorm import ChannelsLastGroupNorm, group_norm_channels_last, use_channels_last_group_norm


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_matches_group_norm_with_gradients(layout):
    g = torch.Generator().manual_seed(0)
    # a large mean against a small spread: the per-channel statistics must not lose the variance to cancellation
    x = (torch.randn(2, 64, 9, 7, generator=g) * 0.5 + 40.0).to(memory_format=layout).requires_grad_()
    w, b = torch.randn(64, generator=g).requires_grad_(), torch.randn(64, generator=g).requires_grad_()
    upstream = torch.randn(2, 64, 9, 7, generator=g)
    # the reference in float64 (torch's own CPU channels-last GroupNorm is off by 7e-3 on this input)
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, b))
    ref = F.group_norm(x64, 32, w64, b64, 1e-6)
    out = group_norm_channels_last(x, 32, w, b, 1e-6)
    torch.testing.assert_close(out, ref.float(), atol=1e-4, rtol=1e-4)
    assert out.is_contiguous(memory_format=layout)  # keeps the caller's layout
    for got, want in zip(torch.autograd.grad((out * upstream).sum(), (x, w, b)),
                         torch.autograd.grad((ref * upstream.double()).sum(), (x64, w64, b64))):
        torch.testing.assert_close(got, want.float(), atol=1e-3, rtol=1e-4)


def test_bf16_input_gives_bf16_output_close_to_float32():
    x = torch.randn(1, 32, 8, 8)
    out = group_norm_channels_last(x.bfloat16(), 8, None, None, 1e-5)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), F.group_norm(x, 8, eps=1e-5), atol=0.03, rtol=0.02)


def test_replacing_the_norms_of_a_vae_encoder_keeps_its_output_and_state_dict():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=16).eval()
    fast = copy.deepcopy(vae)
    n = use_channels_last_group_norm(fast.encoder)
    assert n > 0 and not any(type(m) is torch.nn.GroupNorm for m in fast.encoder.modules())
    assert any(isinstance(m, ChannelsLastGroupNorm) for m in fast.encoder.modules())
    assert fast.state_dict().keys() == vae.state_dict().keys()  # the same parameters under the same names
    fast.encoder.to(memory_format=torch.channels_last)
    img = torch.rand(2, 3, 32, 32)
    grads, means = [], []
    for model, layout in ((vae, torch.contiguous_format), (fast, torch.channels_last)):
        x = img.clone().contiguous(memory_format=layout).requires_grad_()
        mean = model.encode(x).latent_dist.mean
        mean.square().sum().backward()
        means.append(mean.detach())
        grads.append(x.grad)
    torch.testing.assert_close(means[1], means[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-3)
