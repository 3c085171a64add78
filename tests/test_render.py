"""The rasteriser: geometry, compositing, gradients, and agreement between the two backends."""

import math

import pytest
import torch

from lucidkit.cameras import intrinsics, look_at
from lucidkit.splat.render import RenderBackendError, _project, _render_torch, render

W, H = 32, 24


def front_camera(width=W, height=H, fovy=0.5, distance=4.0, dtype=torch.float32):
    """One camera on +x looking at the origin with z up (the azimuth-0 view)."""
    eye = torch.tensor([[distance, 0.0, 0.0]], dtype=dtype)
    viewmats = look_at(eye, torch.zeros(1, 3, dtype=dtype), torch.tensor([[0.0, 0.0, 1.0]], dtype=dtype))
    Ks = intrinsics(torch.tensor([fovy], dtype=dtype), width, height)
    return viewmats, Ks


def random_scene(n, seed=0, dtype=torch.float32, opacity=(0.2, 0.9), scale=(0.05, 0.2), spread=1.2):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * spread
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = scale[0] + (scale[1] - scale[0]) * torch.rand(n, 3, generator=g, dtype=dtype)
    opacities = opacity[0] + (opacity[1] - opacity[0]) * torch.rand(n, generator=g, dtype=dtype)
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    return means, quats, scales, opacities, colors


def two_cameras(dtype=torch.float32, width=W, height=H):
    eye = torch.tensor([[4.0, 0.3, 0.5], [-0.5, 3.8, 1.5]], dtype=dtype)
    up = torch.tensor([[0.0, 0.0, 1.0], [0.05, 0.0, 1.0]], dtype=dtype)
    viewmats = look_at(eye, torch.zeros(2, 3, dtype=dtype), up)
    Ks = intrinsics(torch.tensor([0.6, 0.45], dtype=dtype), width, height)
    return viewmats, Ks


def naive_render(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds):
    """Loop-per-pixel compositor with gsplat's rules, sharing only the projection with the code under test.

    Returns rgb, alpha, depth and the number of pixels that stopped at the transmittance cut-off."""
    means2d, conics, depths, radii = _project(means, quats, scales, opacities, viewmats, Ks, width, height, 0.01, 1e4)
    C = viewmats.shape[0]
    rgb = torch.zeros(C, height, width, 3, dtype=means.dtype)
    alpha = torch.zeros(C, height, width, 1, dtype=means.dtype)
    depth = torch.zeros(C, height, width, 1, dtype=means.dtype)
    n_terminated = 0
    for c in range(C):
        order = [i for i in torch.argsort(depths[c]).tolist() if radii[c, i].all()]
        for row in range(height):
            for col in range(width):
                t, acc, acc_depth = 1.0, torch.zeros(3, dtype=means.dtype), 0.0
                for i in order:
                    dx, dy = col + 0.5 - means2d[c, i, 0], row + 0.5 - means2d[c, i, 1]
                    a, b, cc = conics[c, i]
                    sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
                    al = min(0.999, float(opacities[i] * torch.exp(-sigma)))
                    if sigma < 0 or al < 1 / 255:
                        continue
                    if t * (1 - al) <= 1e-4:
                        n_terminated += 1
                        break
                    acc += colors[i] * al * t
                    acc_depth += float(depths[c, i]) * al * t
                    t *= 1 - al
                rgb[c, row, col] = acc + t * backgrounds[c]
                alpha[c, row, col] = 1 - t
                depth[c, row, col] = acc_depth / max(1 - t, 1e-10)
    return rgb, alpha, depth, n_terminated


def test_single_gaussian_lands_at_projected_pixel_with_expected_footprint():
    viewmats, Ks = front_camera()
    point = torch.tensor([[0.0, 0.3, 0.2]])  # right of and above the centre, seen from +x
    sigma_world, opacity = 0.05, 0.8
    out = render(point, torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), sigma_world), torch.tensor([opacity]),
                 torch.ones(1, 3), viewmats, Ks, W, H)

    focal = Ks[0, 0, 0].item()
    u = W / 2 + focal * 0.3 / 4.0  # +y world is image right
    v = H / 2 - focal * 0.2 / 4.0  # +z world is image up (smaller row)
    peak = torch.argmax(out.alpha[0, ..., 0]).item()
    assert (peak // W, peak % W) == (math.floor(v), math.floor(u))
    assert out.info["means2d"][0, 0].tolist() == pytest.approx([u, v], abs=1e-4)

    # Along the Gaussian's row, alpha follows o * exp(-0.5 d^T S^-1 d), S the EWA footprint: for an isotropic
    # Gaussian at camera (x, y, z), S = (f s / z)^2 [[1 + x^2/z^2, x y/z^2], [x y/z^2, 1 + y^2/z^2]] + 0.3 px^2 I.
    x, y, z = 0.3, -0.2, 4.0
    k = (focal * sigma_world / z) ** 2
    sxx, syy, sxy = k * (1 + x * x / z**2) + 0.3, k * (1 + y * y / z**2) + 0.3, k * x * y / z**2
    det = sxx * syy - sxy * sxy
    row = math.floor(v)
    dy = row + 0.5 - v
    for col in range(W):
        dx = col + 0.5 - u
        expected = opacity * math.exp(-0.5 * (syy * dx * dx - 2 * sxy * dx * dy + sxx * dy * dy) / det)
        expected = expected if expected >= 1 / 255 else 0.0
        assert out.alpha[0, row, col, 0].item() == pytest.approx(expected, abs=1e-5)
    extend = min(3.33, math.sqrt(2 * math.log(255 * opacity)))
    assert out.info["radii"][0, 0].tolist() == [math.ceil(extend * math.sqrt(sxx)), math.ceil(extend * math.sqrt(syy))]


def test_depth_is_camera_z_and_colour_is_gaussian_colour():
    viewmats, Ks = front_camera()
    point = torch.tensor([[0.7, -0.1, 0.0]])  # camera z = 4 - 0.7
    out = render(point, torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.08), torch.tensor([0.9]),
                 torch.tensor([[0.2, 0.5, 0.7]]), viewmats, Ks, W, H)
    drawn = out.alpha[..., 0] > 0
    assert drawn.sum() > 10
    assert torch.allclose(out.depth[..., 0][drawn], torch.tensor(3.3), atol=1e-5)
    assert torch.all(out.depth[..., 0][~drawn] == 0)
    # On a black background the colour is the Gaussian's colour times alpha.
    assert torch.allclose(out.rgb, out.alpha * torch.tensor([0.2, 0.5, 0.7]), atol=1e-6)


def test_background_fills_what_the_gaussians_leave():
    viewmats, Ks = two_cameras()
    scene = random_scene(20)
    black = render(*scene, viewmats, Ks, W, H)
    bg = torch.tensor([[1.0, 1.0, 1.0], [0.2, 0.4, 0.6]])
    coloured = render(*scene, viewmats, Ks, W, H, backgrounds=bg)
    assert torch.allclose(coloured.rgb - black.rgb, (1 - black.alpha) * bg[:, None, None, :], atol=1e-6)
    assert torch.equal(coloured.alpha, black.alpha)


def test_empty_and_invisible_scenes_give_the_background():
    viewmats, Ks = two_cameras()
    bg = torch.tensor([[1.0, 1.0, 1.0], [0.2, 0.4, 0.6]])
    empty = [t[:0] for t in random_scene(3)]
    behind = list(random_scene(3))
    behind[0] = torch.tensor([[9.0, 0.0, 0.0]]).expand(3, 3) * torch.tensor([[1.0], [1.1], [1.2]])  # behind camera 0
    for scene, cams in ((empty, slice(None)), (behind, slice(0, 1))):
        out = render(*scene, viewmats[cams], Ks[cams], W, H, backgrounds=bg[cams])
        assert torch.equal(out.rgb, bg[cams, None, None, :].expand_as(out.rgb))
        assert torch.all(out.alpha == 0) and torch.all(out.depth == 0)
        assert torch.all(out.info["radii"] == 0)


def test_matches_a_per_pixel_loop_including_early_termination():
    viewmats, Ks = two_cameras(torch.float64, width=12, height=10)
    # Opaque, overlapping Gaussians so that some pixels reach the transmittance cut-off.
    scene = random_scene(30, seed=3, dtype=torch.float64, opacity=(0.9, 0.99), scale=(0.1, 0.3), spread=0.4)
    bg = torch.tensor([[0.3, 0.6, 0.9], [1.0, 1.0, 1.0]], dtype=torch.float64)
    *expected, n_terminated = naive_render(*scene, viewmats, Ks, 12, 10, bg)
    out = _render_torch(*scene, viewmats, Ks, 12, 10, bg)
    for got, want in zip((out.rgb, out.alpha, out.depth), expected):
        assert torch.allclose(got, want, atol=1e-10)
    assert n_terminated > 5  # the cut-off was exercised


def test_spherical_harmonics_degree0_equals_rgb():
    viewmats, Ks = two_cameras()
    means, quats, scales, opacities, colors = random_scene(15)
    c0 = 0.28209479177387814
    sh = ((colors - 0.5) / c0)[:, None, :]  # [N, 1, 3]
    a = render(means, quats, scales, opacities, colors, viewmats, Ks, W, H)
    b = render(means, quats, scales, opacities, sh, viewmats, Ks, W, H, sh_degree=0)
    assert torch.allclose(a.rgb, b.rgb, atol=1e-5)


def test_gradients_reach_every_input():
    viewmats, Ks = two_cameras()
    inputs = [t.clone().requires_grad_() for t in (*random_scene(30), viewmats, Ks, torch.rand(2, 3))]
    out = render(*inputs[:7], W, H, backgrounds=inputs[7])
    out.info["means2d"].retain_grad()
    weights = torch.rand_like(out.rgb)
    (out.rgb * weights).sum().backward(retain_graph=True)
    (out.depth.sum() * 0.1 + out.alpha.sum()).backward()
    for name, t in zip(("means", "quats", "scales", "opacities", "colors", "viewmats", "Ks", "backgrounds"), inputs):
        assert t.grad is not None and torch.isfinite(t.grad).all(), name
        assert t.grad.abs().sum() > 0, name
    means2d_grad = out.info["means2d"].grad
    assert means2d_grad.shape == (2, 30, 2) and means2d_grad.abs().sum() > 0


def test_gradients_match_finite_differences():
    viewmats, Ks = two_cameras(torch.float64, width=10, height=8)
    means, quats, scales, opacities, colors = random_scene(4, seed=1, dtype=torch.float64, scale=(0.15, 0.3))
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]], dtype=torch.float64)

    def f(means, quats, scales, opacities, colors, bg):
        out = _render_torch(means, quats, scales, opacities, colors, viewmats, Ks, 10, 8, bg)
        return out.rgb, out.alpha, out.depth

    args = [t.clone().requires_grad_() for t in (means, quats, scales, opacities, colors, bg)]
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gsplat_backend_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    viewmats, Ks = two_cameras()
    with pytest.raises(RenderBackendError, match="gsplat"):
        render(*random_scene(3), viewmats, Ks, W, H, backend="gsplat")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("sh_degree", [None, 0, 1])  # RGB; degree 0 (colours evaluated by lucidkit); gsplat's SH
def test_gsplat_and_torch_backends_agree_on_cuda(sh_degree):
    viewmats, Ks = two_cameras(width=64, height=48)
    scene = [t.cuda() for t in random_scene(200, seed=5, scale=(0.02, 0.1))]
    if sh_degree is not None:  # SH coefficients [N, (d+1)², 3] instead of RGB
        g = torch.Generator().manual_seed(6)
        scene[-1] = torch.randn(200, (sh_degree + 1) ** 2, 3, generator=g).cuda()
    bg = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.5, 1.0]], device="cuda")
    results = {}
    for backend in ("gsplat", "torch"):
        inputs = [t.clone().requires_grad_() for t in scene]
        out = render(*inputs, viewmats.cuda(), Ks.cuda(), 64, 48, backgrounds=bg, sh_degree=sh_degree,
                     backend=backend)
        weights = torch.linspace(0, 1, out.rgb.numel(), device="cuda").reshape(out.rgb.shape)
        ((out.rgb * weights).sum() + 0.1 * (out.depth * out.alpha).sum()).backward()
        results[backend] = (out, [t.grad for t in inputs])
    (a, grads_a), (b, grads_b) = results["gsplat"], results["torch"]
    assert (a.rgb - b.rgb).abs().max() < 1e-4
    assert (a.alpha - b.alpha).abs().max() < 1e-4
    assert (a.info["radii"].long() - b.info["radii"].long()).abs().max() <= 1  # float rounding before ceil
    for name, ga, gb in zip(("means", "quats", "scales", "opacities", "colors"), grads_a, grads_b):
        rel = (ga - gb).norm() / gb.norm().clamp_min(1e-12)
        assert rel < 1e-2, (name, rel.item())
