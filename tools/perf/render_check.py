"""Compare the two rasteriser backends on CUDA: agreement (forward and gradients) and speed.

    python tools/perf/render_check.py [--out results.txt]     (from the repository root, lucidkit installed)

Needs CUDA (gsplat compiles its kernels on first use, ~80 s). Scenes are random Gaussian blobs filling a unit ball,
seen by the recipe's orbit cameras; Gaussian sizes shrink as 1/sqrt(N) so the covered area stays comparable.
Forward errors are max |gsplat - torch| over all pixels (depth only where alpha > 0.05, since expected depth divides by
alpha); gradient errors are ||g_gsplat - g_torch|| / ||g_torch|| per input, for a fixed random linear loss on rgb,
alpha and depth. Timings are the median of several forward+backward passes, synchronised.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lucidkit.cameras import CameraConfig, OrbitSampler
from lucidkit.splat.render import render

INPUT_NAMES = ("means", "quats", "scales", "opacities", "colors")


def make_scene(n, sh_degree=None, seed=0, device="cuda"):
    """A random scene of ``n`` Gaussians; ``colors`` are RGB or SH coefficients [n, (d+1)^2, 3]."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    means = direction * torch.rand(n, 1, generator=g).pow(1 / 3) * 0.9
    quats = torch.randn(n, 4, generator=g)
    scales = 0.06 * (2000 / n) ** 0.5 * (0.5 + torch.rand(n, 3, generator=g))
    opacities = 0.1 + 0.85 * torch.rand(n, generator=g)
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g)
    else:
        colors = 0.3 * torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g)
    return [t.to(device) for t in (means, quats, scales, opacities, colors)]


def cameras(n_views, width, height, seed=0, device="cuda"):
    cams = OrbitSampler(CameraConfig(), width, height).sample(n_views, 0, torch.Generator().manual_seed(seed))
    return cams.viewmats.to(device), cams.Ks.to(device)


def run(backend, scene, viewmats, Ks, width, height, sh_degree=None, weights=None):
    inputs = [t.clone().requires_grad_() for t in scene]
    backgrounds = torch.rand(viewmats.shape[0], 3, generator=torch.Generator().manual_seed(1)).to(viewmats.device)
    out = render(*inputs, viewmats, Ks, width, height, backgrounds=backgrounds, sh_degree=sh_degree, backend=backend)
    if weights is None:
        g = torch.Generator().manual_seed(2)
        weights = [torch.rand(t.shape, generator=g).to(t.device) for t in (out.rgb, out.alpha, out.depth)]
    loss = (out.rgb * weights[0]).sum() + (out.alpha * weights[1]).sum() + 0.1 * (out.depth * weights[2]).sum()
    loss.backward()
    return out, [t.grad for t in inputs], weights


def compare(n, width, height, n_views=4, sh_degree=None):
    scene = make_scene(n, sh_degree)
    viewmats, Ks = cameras(n_views, width, height)
    a, grads_a, weights = run("gsplat", scene, viewmats, Ks, width, height, sh_degree)
    b, grads_b, _ = run("torch", scene, viewmats, Ks, width, height, sh_degree, weights)
    covered = (a.alpha > 0.05) & (b.alpha > 0.05)
    row = {
        "rgb": (a.rgb - b.rgb).abs().max().item(),
        "alpha": (a.alpha - b.alpha).abs().max().item(),
        "depth": (a.depth - b.depth)[covered].abs().max().item() if covered.any() else 0.0,
        "radii_eq": (a.info["radii"] == b.info["radii"].to(a.info["radii"].dtype)).float().mean().item(),
    }
    for name, ga, gb in zip(INPUT_NAMES, grads_a, grads_b):
        row[name] = ((ga - gb).norm() / gb.norm().clamp_min(1e-20)).item()
    return row


def time_backend(backend, n, width, height, n_views=4, repeats=10):
    scene = make_scene(n)
    viewmats, Ks = cameras(n_views, width, height)
    times = []
    n_pairs = None
    for i in range(repeats + 2):
        torch.cuda.synchronize()
        start = time.perf_counter()
        out, _, _ = run(backend, scene, viewmats, Ks, width, height)
        torch.cuda.synchronize()
        if i >= 2:  # warm-up
            times.append(time.perf_counter() - start)
        n_pairs = out.info.get("n_pairs")
    return statistics.median(times) * 1e3, n_pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("render_check needs CUDA")

    lines = [f"render_check: gsplat vs _render_torch on {torch.cuda.get_device_name()} (torch {torch.__version__})", ""]
    lines.append("Agreement (4 views, random linear loss on rgb + alpha + 0.1 depth; grads: relative L2 error)")
    header = f"{'case':<22}{'rgb':>9}{'alpha':>9}{'depth':>9}{'radii=':>8}" + "".join(f"{n:>11}" for n in INPUT_NAMES)
    lines.append(header)
    for n, w, h, sh in ((200, 64, 64, None), (2000, 64, 64, None), (2000, 128, 96, None), (2000, 64, 64, 3)):
        row = compare(n, w, h, sh_degree=sh)
        case = f"N={n} {w}x{h}" + (f" sh{sh}" if sh is not None else "")
        lines.append(
            f"{case:<22}{row['rgb']:>9.1e}{row['alpha']:>9.1e}{row['depth']:>9.1e}{row['radii_eq']:>8.3f}"
            + "".join(f"{row[name]:>11.2e}" for name in INPUT_NAMES)
        )
        print(lines[-1], flush=True)

    lines += ["", "Speed: forward + backward, 4 views, median ms (torch pairs = Gaussian-pixel pairs composited)"]
    lines.append(f"{'size':<10}{'N':>8}{'gsplat ms':>12}{'torch ms':>12}{'torch pairs':>14}")
    for size in (64, 512):
        for n in (2000, 20000, 100000):
            g_ms, _ = time_backend("gsplat", n, size, size)
            t_ms, pairs = time_backend("torch", n, size, size)
            lines.append(f"{size}x{size:<6}{n:>8}{g_ms:>12.2f}{t_ms:>12.2f}{pairs:>14,}")
            print(lines[-1], flush=True)

    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
