"""Devices and precisions: which device and dtype a run uses (`pick_device`, `resolve_dtype`), and moving the
loop's small per-update tensors to the GPU (`to_device`).

The per-update tensors (cameras, backgrounds, noise) are drawn on the CPU with seeded CPU generators, so a seed
gives the same run on any device. A plain `.to("cuda")` waits until the GPU has finished all queued work, and the GPU
then idles while the CPU catches up; with `non_blocking=True` a small copy from ordinary (pageable) memory is staged
by the CUDA driver and queued like a kernel, without that wait (pinning the memory first cost the host more than it
saved; docs/performance.md).
"""

from __future__ import annotations

import os

import torch

from lucidkit.errors import UserError


def to_device(t: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`t.to(device, dtype)`, without a host sync when copying to CUDA. (A copy to the CPU stays blocking: the
    values must be there when it returns.)"""
    return t.to(device, dtype, non_blocking=torch.device(device).type == "cuda")


def resolve_dtype(precision: str | torch.dtype, device: str | torch.device) -> torch.dtype:
    """Turn a `--precision` value into a torch dtype for `device`.

    "auto" -> bfloat16 on CUDA (float16 if the GPU lacks bf16), float32 on CPU; "fp32"/"bf16"/"fp16" (or the
    torch names) are taken as given. Half precision on CPU is refused: it is slow there and the CPU path is
    only meant for small models.
    """
    device = torch.device(device)
    if isinstance(precision, torch.dtype):
        dtype = precision
    else:
        names = {
            "fp32": torch.float32,
            "float32": torch.float32,
            "float": torch.float32,
            "bf16": torch.bfloat16,
            "bfloat16": torch.bfloat16,
            "fp16": torch.float16,
            "float16": torch.float16,
            "half": torch.float16,
        }
        key = str(precision).lower()
        if key == "auto":
            if device.type != "cuda":
                return torch.float32
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if key not in names:
            raise UserError(f"unknown precision {precision!r}: expected auto, fp32, bf16 or fp16")
        dtype = names[key]
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise UserError(f"unsupported precision {dtype}: expected fp32, bf16 or fp16")
    if device.type == "cpu" and dtype != torch.float32:
        raise UserError(f"precision {dtype_name(dtype)} needs a CUDA device; on CPU use fp32")
    return dtype


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def check_device(device: str | torch.device) -> torch.device:
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise UserError(f"unknown device {device!r}: expected cpu or cuda[:N]") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device} was asked for but CUDA is not available on this machine; use cpu")
    return device


def pick_device(name: str) -> torch.device:
    """A `--device` value ('auto', 'cpu', 'cuda[:N]') as a torch device; 'auto' takes CUDA when it is there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return check_device(name)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's or taskset's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def cpu_threads(requested: int | None = None, jobs: int = 1) -> int:
    """Threads for torch's CPU work: `requested` (≥ 1), else OMP_NUM_THREADS when the user set it, else the usable
    cores shared fairly among `jobs` processes running side by side. More threads than cores only adds contention: each process that takes every core makes
    the others wait, and together they burn several times the CPU time of one run."""
    if requested is not None:
        if requested < 1:
            raise UserError(f"--threads {requested}: expected 1 or more")
        return requested
    if os.environ.get("OMP_NUM_THREADS", "").strip().isdigit() and jobs == 1:  # the user's own setting wins
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, usable_cores() // max(jobs, 1))


def use_cpu_threads(requested: int | None = None, jobs: int = 1) -> int:
    """Set torch's intra-op thread count (`cpu_threads`) and return it."""
    n = cpu_threads(requested, jobs)
    torch.set_num_threads(n)
    return n
