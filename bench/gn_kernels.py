"""The VAE encoder's GroupNorm (+ SiLU) Triton kernels (`lucidkit/groupnorm_kernels.py`) against the PyTorch
function they replace (`group_norm_channels_last`, compiled, as round 9's production ran it). No UNet, no render:

  1. every GroupNorm of one encoder forward at the loop's input (4 × 512², bf16): shape, SiLU fused, on the kernels;
  2. each shape's forward+backward, kernels vs compiled PyTorch, with the rate on the fewest bytes (3 passes
     forward, 5 backward), and the sum over the encoder; a sweep of the kernels' tile size and warps;
  3. the whole encoder forward+backward as production runs it (compiled, replayed as CUDA graphs), with the
     kernels and without, back to back, and how far apart their outputs and input gradients are.

    python3 bench/gn_kernels.py            (CUDA)
    TRITON_INTERPRET=1 python3 bench/gn_kernels.py --arch tiny --device cpu   (a smoke test of the script only)
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch

from lucidkit.bench.speed import time_ms


def encoder_input(prior, generator: torch.Generator) -> torch.Tensor:
    """Images [4, 3, H, W] as `latent_posterior` hands them to the encoder (the prior's dtype and layout)."""
    x = torch.rand(4, 3, prior.resolution, prior.resolution, device=prior.device, generator=generator)
    return x.to(prior.dtype).contiguous(memory_format=prior._vae_layout)


def eager_encoder(prior) -> torch.nn.Module:
    """The encoder module under the fast path's wrappers (GraphedModule, torch.compile)."""
    encoder = prior.vae.encoder
    encoder = getattr(encoder, "module", encoder)
    return getattr(encoder, "_orig_mod", encoder)


def group_norm_shapes(prior) -> list[tuple[tuple, int, bool, bool, int]]:
    """(input shape, groups, SiLU fused, on the kernels, count) of every GroupNorm of one encoder forward at the loop's
    input, seen by hooks on the eager module (the compiled one runs the same modules)."""
    from lucidkit.groupnorm import ChannelsLastGroupNorm

    seen = defaultdict(int)

    def record(module, args):
        seen[(tuple(args[0].shape), module.num_groups, module.silu, module._use_kernels(args[0]))] += 1

    encoder = eager_encoder(prior)
    hooks = [m.register_forward_pre_hook(record) for m in encoder.modules() if isinstance(m, ChannelsLastGroupNorm)]
    with torch.no_grad():
        encoder(encoder_input(prior, torch.Generator(prior.device).manual_seed(0)))
    for h in hooks:
        h.remove()
    return [key + (n,) for key, n in seen.items()]


def kernel_table(prior, sweep: bool = True) -> str:
    """Forward+backward of each of the encoder's 4-D GroupNorm shapes: kernels vs the compiled PyTorch function."""
    import lucidkit.groupnorm_kernels as kernels
    from lucidkit.groupnorm import group_norm_channels_last

    def pytorch(x, groups, w, b, silu):
        y = group_norm_channels_last(x, groups, w, b, 1e-6)
        return torch.nn.functional.silu(y) if silu else y

    compiled = torch.compile(pytorch, dynamic=False)
    shapes = group_norm_shapes(prior)
    lines = [f"encoder GroupNorms: {sum(n for *_, n in shapes)} calls, {sum(n for *_, on, n in shapes if on)} on "
             "the kernels; forward+backward of each shape (ms; TB/s on the fewest bytes, 8 passes):"]
    total = defaultdict(float)
    g = torch.Generator(prior.device).manual_seed(0)
    largest = None
    for shape, groups, silu, on, n in sorted(shapes, key=lambda s: -torch.Size(s[0]).numel()):
        if len(shape) != 4:  # the attention's GroupNorm sees [B, C, HW]: PyTorch path
            lines.append(f"  x{n} {str(list(shape)):<22} silu={silu!s:<5} not 4-D: PyTorch ops")
            continue
        x = torch.randn(shape, device=prior.device, generator=g).to(prior.dtype)
        x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
        w = torch.randn(shape[1], device=prior.device, generator=g).to(prior.dtype)
        b = torch.randn(shape[1], device=prior.device, generator=g).to(prior.dtype)
        dy = torch.randn_like(x)
        floor_gb = 8 * x.numel() * x.element_size() / 1e9
        row = []
        for name, fn in (("kernels", lambda: kernels.group_norm_silu(x, groups, w, b, 1e-6, silu)),
                         ("pytorch compiled", lambda: compiled(x, groups, w, b, silu))):
            ms = time_ms(lambda: torch.autograd.grad(fn(), x, dy), prior.device)
            total[name] += n * ms
            row.append(f"{name} {ms:6.3f} ms {floor_gb / ms:5.2f} TB/s")
        lines.append(f"  x{n} {str(list(shape)):<22} silu={silu!s:<5} on={on!s:<5} " + "   ".join(row))
        largest = largest or (x, groups, w, b, dy, silu, floor_gb)
    lines.append("  sum over the encoder's 4-D GroupNorms: " + ", ".join(f"{k} {v:.2f} ms" for k, v in total.items()))
    if sweep and largest is not None:
        x, groups, w, b, dy, silu, floor_gb = largest
        default = (kernels.TILE, kernels.WARPS)
        runs = []
        for tile in (4096, 8192, 16384):
            for warps in (4, 8, 16):
                kernels.TILE, kernels.WARPS = tile, warps
                ms = time_ms(lambda: torch.autograd.grad(kernels.group_norm_silu(x, groups, w, b, 1e-6, silu), x, dy),
                             prior.device)
                runs.append(f"tile {tile} warps {warps}: {ms:.3f} ms ({floor_gb / ms:.2f} TB/s)")
        kernels.TILE, kernels.WARPS = default
        lines.append(f"  sweep at {list(x.shape)}:\n    " + "\n    ".join(runs))
    return "\n".join(lines)


def set_group_norm_kernels(prior, on: bool) -> None:
    """Switch the encoder's GroupNorm kernels and compile it afresh, as enable_fast_path does (CUDA graphs)."""
    from lucidkit.graphed import GraphedModule
    from lucidkit.groupnorm import ChannelsLastGroupNorm

    encoder = eager_encoder(prior)
    for m in encoder.modules():
        if isinstance(m, ChannelsLastGroupNorm):
            m.kernels = on
    torch._dynamo.reset()  # else the compiled code of the other setting is reused
    prior.vae.encoder = GraphedModule(torch.compile(encoder, dynamic=False))


def encoder_ab(prior) -> str:
    """The encoder forward+backward as production runs it, with and without the kernels (then with again)."""
    x = encoder_input(prior, torch.Generator(prior.device).manual_seed(0)).requires_grad_(True)
    lines, results = ["encoder forward+backward, compiled and replayed as CUDA graphs, back to back:"], {}
    for on in (True, False, True):
        set_group_norm_kernels(prior, on)

        def fwd_bwd():
            out = prior.vae.encoder(x)
            return out, torch.autograd.grad(out, x, torch.ones_like(out))[0]

        ms = time_ms(fwd_bwd, prior.device)
        out, grad = fwd_bwd()
        results[on] = (out.detach().float(), grad.float())
        lines.append(f"  GroupNorm kernels {'on ' if on else 'off'}  {ms:6.2f} ms")
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    (o1, g1), (o0, g0) = results[True], results[False]
    lines.append(f"  kernels vs PyTorch ops: output relative difference {rel(o1, o0):.2e}, input gradient {rel(g1, g0):.2e}")
    return "\n".join(lines)


def main() -> None:
    from lucidkit.prior import DiffusionPrior

    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="sd21-base")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    cuda = args.device == "cuda"
    prior = DiffusionPrior.from_arch(args.arch, device=args.device, dtype="bf16" if cuda else "fp32", seed=0)
    if cuda:
        prior.enable_fast_path(compile=True)
    else:  # the smoke test: the channels-last norms without compiling
        from lucidkit.groupnorm import use_channels_last_group_norm

        use_channels_last_group_norm(prior.vae.encoder)
        prior.vae.encoder.to(memory_format=torch.channels_last)
        prior._vae_layout = torch.channels_last
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name() if cuda else 'cpu'}", flush=True)
    print(kernel_table(prior, sweep=cuda), flush=True)
    if cuda:
        print(encoder_ab(prior), flush=True)


if __name__ == "__main__":
    main()
