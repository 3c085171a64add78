"""Timing and FLOP counting shared by the speed benchmark's cases (`speed.py`, `speed_avatar.py`)."""

from __future__ import annotations

import time

import torch


def sync(device):
    """Wait for the device's queued work (CUDA; nothing to wait for on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn, device, repeat: int = 10, warmup: int = 3) -> float:
    """Mean wall time of `fn()` in ms over `repeat` calls run back to back, as the loop runs them (the CPU queues
    work ahead of the GPU; the device is synchronised only before and after the timed calls)."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - t0) * 1e3 / repeat


def count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    # run eagerly: a compiled UNet or encoder would compile again for the batch of one counted here (minutes)
    with torch.compiler.set_stance("force_eager"), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())
