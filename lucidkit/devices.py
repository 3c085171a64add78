"""Moving the loop's small per-update tensors (cameras, backgrounds, noise) from the CPU to the GPU.

They are drawn on the CPU with seeded CPU generators, so a seed gives the same run on any device. A plain
`.to("cuda")` from ordinary (pageable) memory makes the host wait until the GPU has finished all queued work;
several of those per update leave the GPU idle while the CPU catches up. A copy from pinned memory is queued
like a kernel instead (PyTorch caches pinned blocks and keeps one alive until its copy has run).
"""

from __future__ import annotations

import torch


def to_device(t: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`t.to(device, dtype)`, without a host sync when copying from the CPU to CUDA."""
    device = torch.device(device)
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory().to(device, non_blocking=True)
    return t.to(device, dtype)
