"""Where does the VAE encoder's forward+backward go at true scale? (SD 2.1-base VAE, random weights, 4×512², CUDA)

Times `DiffusionPrior.encode_images` fwd and fwd+bwd for layouts / compile modes / dtypes, counts FLOPs, and prints
the top CUDA kernels of the production setting. Run on the GPU machine:
    python3 bench/profile_vae.py > $OUT/profile_vae.txt
"""

from __future__ import annotations

import sys

import torch

from lucidkit.bench.speed import time_ms
from lucidkit.prior import DiffusionPrior

B, SIZE = 4, 512
DEVICE = torch.device("cuda")


def measure(name: str, prior, images) -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)

    def fwd():
        with torch.no_grad():
            prior.encode_images(images, generator=gen)

    def fwd_bwd():
        z = prior.encode_images(images, generator=gen)
        z.backward(torch.ones_like(z))
        images.grad = None

    for _ in range(3):
        fwd_bwd()
    f, fb = time_ms(fwd, DEVICE, repeat=10), time_ms(fwd_bwd, DEVICE, repeat=10)
    torch.cuda.reset_peak_memory_stats()
    fwd_bwd()
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"{name:<44} fwd(no grad) {f:7.1f} ms   fwd+bwd {fb:7.1f} ms   peak {peak:5.2f} GiB", flush=True)


def main() -> None:
    torch.manual_seed(0)
    images = torch.rand(B, 3, SIZE, SIZE, device="cuda", requires_grad=True)
    from torch.utils.flop_counter import FlopCounterMode

    prior = DiffusionPrior.from_arch("sd21-base", device="cuda", dtype="bf16", seed=0)
    with FlopCounterMode(display=False) as fc:
        z = prior.encode_images(images)
        z.backward(torch.ones_like(z))
    images.grad = None
    print(f"encoder fwd+bwd FLOPs for {B}x{SIZE}²: {fc.get_total_flops() / 1e12:.2f} TFLOP "
          f"(floor at 700 TFLOP/s: {fc.get_total_flops() / 700e12 * 1e3:.1f} ms)", flush=True)

    measure("bf16 eager, contiguous", prior, images)
    if "--profile" in sys.argv:
        prior.vae.to(memory_format=torch.channels_last)
        prior.source["fast_path"] = True
        torch.backends.cudnn.benchmark = True
        measure("bf16 eager, channels-last + cudnn.benchmark", prior, images)
        profile_table(prior, images)
        return

    from diffusers.models.attention_processor import AttnProcessor

    torch.backends.cudnn.benchmark = True
    encoder = prior.vae.encoder
    prior.vae.encoder = torch.compile(encoder, dynamic=False)
    measure("bf16 compiled, contiguous", prior, images)
    prior.vae.set_attn_processor(AttnProcessor())  # classic attention: bmm + softmax instead of SDPA
    measure("bf16 eager->compiled, contiguous, bmm attention", prior, images)
    torch._dynamo.reset()
    prior.vae.encoder = encoder
    measure("bf16 eager, contiguous, bmm attention", prior, images)
    prior.vae.to(memory_format=torch.channels_last)
    prior.source["fast_path"] = True
    measure("bf16 eager, channels-last, bmm attention", prior, images)
    prior.vae.encoder = torch.compile(encoder, dynamic=False)
    measure("bf16 compiled, channels-last, bmm attention", prior, images)
    profile_table(prior, images)


def profile_table(prior, images) -> None:
    from torch.profiler import ProfilerActivity, profile

    def step():
        z = prior.encode_images(images)
        z.backward(torch.ones_like(z))
        images.grad = None

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=16, max_name_column_width=100), flush=True)


if __name__ == "__main__":
    sys.exit(main())
