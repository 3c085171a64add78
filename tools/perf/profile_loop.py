"""Where does a real loop update wait? Profiles updates of the production loop (the `fast` case of `bench speed`:
SD 2.1-base shapes, random weights, B = 4, 512², 100k Gaussians) and prints how much of the wall time the GPU
is busy, the longest idle gaps, and the host-side calls that block on the GPU, with where they are called from.

    python3 tools/perf/profile_loop.py [--arch tiny --device cpu] > $OUT/profile_loop.txt
    python3 tools/perf/profile_loop.py --low-memory     (the `low-memory` case: eager, VAE checkpointed and sliced)
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from lucidkit.bench.speed import _sync, build
from lucidkit.optimize import optimize

BLOCKING = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy", "cudaMemcpyAsync",
            "cudaEventSynchronize", "aten::item", "aten::_local_scalar_dense", "aten::nonzero")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="sd21-base")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--start", type=int, default=3500, help="loop step to profile from (3500: a late update)")
    ap.add_argument("--low-memory", action="store_true", help="profile the low-memory case instead of the fast one")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    prior, guidance, cfg, state, objective, sampler = build(
        args.arch, device, "bf16" if cuda else "fp32", 4, 512 if args.arch != "tiny" else 64, 100_000 if cuda else 2000,
        perp_neg=False, fast=cuda and not args.low_memory, low_memory=args.low_memory)

    def run(steps: int, callbacks=()):
        loop_cfg = dataclasses.replace(cfg.loop, steps=state.step + steps)
        optimize(state, sampler, objective, loop_cfg, cfg.optim, list(callbacks))

    state.step = args.start
    run(4)  # compilation, CUDA graphs, autotuning
    _sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    stacks = torch._C._profiler._ExperimentalConfig(verbose=True)  # Python call stacks on the recorded ops
    with profile(activities=acts, with_stack=True, experimental_config=stacks) as prof:
        run(args.steps)
        _sync(device)
    events = prof.events()
    cpu = [e for e in events if e.device_type == DeviceType.CPU]
    t0 = min(e.time_range.start for e in cpu)
    t1 = max(e.time_range.end for e in cpu)
    wall = (t1 - t0) / 1e3 / args.steps
    case = "low-memory" if args.low_memory else "fast"
    print(f"{case}: {args.steps} updates from step {args.start}: {wall:.1f} ms of wall time per update")
    if cuda:
        kernels = sorted((e.time_range.start, e.time_range.end) for e in events if e.device_type == DeviceType.CUDA)
        busy, gaps, end = 0.0, [], None
        for s, e in kernels:
            if end is not None and s > end:
                gaps.append((s - end, end))
            busy += max(0.0, e - max(s, end if end is not None else s))
            end = e if end is None else max(end, e)
        print(f"GPU busy {busy / 1e3 / args.steps:.1f} ms per update ({100 * busy / (t1 - t0):.0f}% of the wall time); "
              f"idle gaps over 50 µs: {sum(g for g, _ in gaps if g > 50) / 1e3 / args.steps:.1f} ms per update")
        for g, at in sorted(gaps, reverse=True)[:12]:
            # what the CPU was doing while the GPU idled: the innermost CPU op that covers the gap's start
            covering = [e for e in cpu if e.time_range.start <= at <= e.time_range.end]
            inner = min((e for e in covering if not e.name.startswith(("<built-in", "torch/", "<"))),
                        key=lambda e: e.time_range.end - e.time_range.start, default=None)
            where = "" if inner is None else f"{inner.name}  <- " + " <- ".join(
                f for f in (inner.stack or []) if "lucidkit" in f or "gsplat" in f)[:300]
            print(f"  gap {g / 1e3:6.2f} ms at +{(at - t0) / 1e3:7.1f} ms: {where}")
        print("CPU ops with the most time (per update, self time excluded from callers):")
        top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:10]
        for e in top:
            print(f"  {e.key[:60]:<60} x{e.count / args.steps:6.1f}  {e.self_cpu_time_total / 1e3 / args.steps:7.2f} ms")
    print("host calls that wait for the device (per update), by call site:")
    table = prof.key_averages(group_by_stack_n=6)
    rows = [e for e in table if e.key in BLOCKING]
    rows.sort(key=lambda e: -e.cpu_time_total)
    for e in rows[:16]:
        stack = " <- ".join(f for f in e.stack if "lucidkit" in f or "gsplat" in f or "diffusers" in f)[:400]
        print(f"  {e.key:<28} x{e.count / args.steps:5.1f}  {e.cpu_time_total / 1e3 / args.steps:6.2f} ms  {stack}")


if __name__ == "__main__":
    main()
