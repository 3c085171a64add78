"""Timestep schedules of the ISM recipe (functional, no state).

Indices and values. The prior has `T = 1000` training steps with `alphas_cumprod[0..T-1]`. The recipe samples an
*index* `i_t` and, like the LucidDreamer release (DDIM with `steps_offset = 1`), feeds the UNet the timestep
*value* `t = i_t + steps_offset`; `ᾱ_t` is looked up at that value, `alphas_cumprod[t]`. Everything outside this
file works with timestep values.

    r      = 1 - min(step / anneal_steps, 1)                falls from 1 to 0
    i_t   ~ U[t_min, t_max_end + (t_max_start - t_max_end) * r)      one index for the whole batch
    δ_T    = delta_t + ceil(r * (delta_t_start - delta_t))  the interval, annealed toward delta_t
    i_s    = max(i_t - δ_T, 0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Interval:
    """One sampled interval, as timestep values (what the UNet sees and `alphas_cumprod` is indexed with)."""

    t: int  # the noisier end
    s: int  # the cleaner end, s = t - delta (clamped at the first timestep)
    delta: int  # δ_T in index units


def anneal_ratio(step: int, anneal_steps: int) -> float:
    """r = 1 - min(step / anneal_steps, 1): 1 at the start, 0 once `anneal_steps` updates are done."""
    if anneal_steps <= 0:
        return 0.0
    return 1.0 - min(step / anneal_steps, 1.0)


def timestep_upper(step: int, t_max_start: int, t_max_end: int, anneal_steps: int) -> int:
    """The exclusive upper bound of the sampled index at this step (980 → 500 in the recipe)."""
    r = anneal_ratio(step, anneal_steps)
    return t_max_end + int(round((t_max_start - t_max_end) * r))


def interval_size(step: int, delta_t: int, delta_t_start: int, anneal_steps: int) -> int:
    """δ_T at this step: delta_t_start at the start, annealed to delta_t (ceil, as the release does)."""
    r = anneal_ratio(step, anneal_steps)
    return int(delta_t + math.ceil(r * (delta_t_start - delta_t)))


def sample_interval(
    step: int,
    generator: torch.Generator,
    *,
    t_min: int = 20,
    t_max_start: int = 980,
    t_max_end: int = 500,
    delta_t: int = 80,
    delta_t_start: int = 100,
    anneal_steps: int = 1500,
    steps_offset: int = 1,
) -> Interval:
    """Sample one (t, s) pair for a batch of views, drawing from `generator` (CPU generator)."""
    high = max(timestep_upper(step, t_max_start, t_max_end, anneal_steps), t_min + 1)
    i_t = int(torch.randint(t_min, high, (1,), generator=generator).item())
    delta = interval_size(step, delta_t, delta_t_start, anneal_steps)
    i_s = max(i_t - delta, 0)
    return Interval(t=i_t + steps_offset, s=i_s + steps_offset, delta=delta)


def inversion_timesteps(s: int, start: int, stride: int, max_steps: int) -> list[int]:
    """Timestep values visited by DDIM inversion from `start` up to `s`, in strides of `stride`.

    The first entry is `start`, the last is `s`; at most `max_steps` strides are taken (the release's
    `xs_inv_steps`), so with a short budget the walk starts higher: `start = max(s - stride * max_steps, start)`.
    """
    start = max(s - stride * max_steps, start)
    points = [start]
    while points[-1] < s:
        points.append(min(points[-1] + stride, s))
    return points
