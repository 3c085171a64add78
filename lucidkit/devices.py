"""Moving the loop's small per-update tensors (cameras, backgrounds, noise) from the CPU to the GPU.

They are drawn on the CPU with seeded CPU generators, so a seed gives the same run on any device. A plain
`.to("cuda")` waits until the GPU has finished all queued work (PyTorch synchronises after a blocking copy), and
the GPU then idles while the CPU catches up. With `non_blocking=True` a small copy from ordinary (pageable) memory
is staged by the CUDA driver and queued like a kernel, without that wait. (Pinning the memory first was measured
too: `pin_memory()` cost the host more than it saved, bench/results/levers.md round 7.)
"""

from __future__ import annotations

import torch


def to_device(t: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`t.to(device, dtype)`, without a host sync when copying to CUDA. (A copy to the CPU stays blocking: the
    values must be there when it returns.)"""
    return t.to(device, dtype, non_blocking=torch.device(device).type == "cuda")
