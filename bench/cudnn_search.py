"""Round 11: do cuDNN's exhaustive algorithm search and PyTorch's GEMM tuning (TunableOp) find faster kernels for
the UNet's and the VAE encoder's convolutions and matmuls? (SD 2.1-base shapes, random weights, bf16, CUDA.)

With `torch.backends.cudnn.benchmark` on, PyTorch times only the first `benchmark_limit` (default 10) engines that
cuDNN's heuristics propose for each convolution shape; 0 times every engine. cuDNN caches its choice per shape for
the life of the process, so each setting runs in a process of its own. Kernel times come from the CUDA profiler
(the convolution and matmul kernels of eager calls are the ones the compiled production path launches: inductor
calls the same aten convolutions and GEMMs), so no compilation is needed.

    python3 bench/cudnn_search.py > $OUT/cudnn_search.txt      # all settings, one child process each
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch

B, SIZE = 4, 512
SETTINGS = {  # name: child arguments
    "limit10": ["--limit", "10"],  # PyTorch's default (production)
    "limit0": ["--limit", "0"],  # every engine cuDNN offers
    "limit0+tunableop": ["--limit", "0", "--tunableop"],
    "limit10-again": ["--limit", "10"],  # drift control
}


def kernel_ms(fn, calls: int = 5) -> dict[str, float]:
    """CUDA kernel time per call of `fn`, by kernel family (bench/profile_levers.py's families), and "all"."""
    from profile_levers import family_ms, profiled

    fams = family_ms(profiled(fn, calls).key_averages(), calls)
    fams["all"] = sum(fams.values())
    return fams


def child(limit: int, tunableop: bool) -> None:
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.benchmark_limit = limit
    if tunableop:
        torch.cuda.tunable.enable(True)
        torch.cuda.tunable.tuning_enable(True)
        torch.cuda.tunable.set_filename("/tmp/tunableop_results%d.csv")
    from lucidkit.prior import DiffusionPrior

    torch.manual_seed(0)
    prior = DiffusionPrior.from_arch("sd21-base", device="cuda", dtype="bf16", seed=0)
    prior.enable_fast_path(compile=False)  # channels-last UNet, cuDNN autotuning, bmm VAE attention
    encoder = prior.channels_last_encoder()  # as the compiled path runs it, eager

    h = prior.latent_size
    emb = torch.randn(2 * B, 77, prior.unet.config.cross_attention_dim, device="cuda")
    xs = {n: torch.randn(n, 4, h, h, device="cuda") for n in (B, 2 * B)}
    images = torch.rand(B, 3, SIZE, SIZE, device="cuda").to(memory_format=torch.channels_last)
    images = (images * 2 - 1).to(torch.bfloat16).requires_grad_(True)

    def unet(n):
        def call():
            with torch.no_grad():
                prior.predict_noise(xs[n], 400, emb[:n])
        return call

    def encoder_fwd_bwd():
        z = encoder(images)
        z.backward(torch.ones_like(z))
        images.grad = None

    t0 = time.monotonic()
    for fn in (unet(B), unet(2 * B), encoder_fwd_bwd):  # first calls: cuDNN's search (and TunableOp's)
        fn()
    torch.cuda.synchronize()
    search_s = time.monotonic() - t0
    parts = {"UNet B=4": unet(B), "UNet 2B=8": unet(2 * B), "encoder fwd+bwd": encoder_fwd_bwd}
    rows = []
    for label, fn in parts.items():
        k = kernel_ms(fn)
        rows.append(f"  {label:<16} convolution {k.get('convolution', 0):6.2f}  matmul {k.get('matmul', 0):5.2f}  "
                    f"attention {k.get('attention', 0):5.2f}  all kernels {k['all']:6.2f} ms")
    print(f"benchmark_limit={limit} tunableop={tunableop}: first calls (search) {search_s:.0f} s", flush=True)
    print("\n".join(rows), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int)
    ap.add_argument("--tunableop", action="store_true")
    ap.add_argument("--only", default=",".join(SETTINGS), help="comma-separated settings (parent only)")
    args = ap.parse_args()
    if args.limit is not None:
        return child(args.limit, args.tunableop)
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__} cuDNN {torch.backends.cudnn.version()}", flush=True)
    for name in args.only.split(","):
        print(f"== {name}", flush=True)
        done = subprocess.run([sys.executable, __file__, *SETTINGS[name]], capture_output=True, text=True)
        print(done.stdout.rstrip() or done.stderr[-2000:], flush=True)


if __name__ == "__main__":
    sys.exit(main())
