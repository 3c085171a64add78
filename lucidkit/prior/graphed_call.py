"""A module replayed as CUDA graphs without a compiler: one graph per input signature, for calls without gradients.

For the UNet (and ControlNet) of the "graphs" and "regional" ways of running the prior (`PriorConfig.compile`):
the eager UNet is launch-bound — about 1150 kernels a call that the CPU queues one by one — and a CUDA graph
queues them all at once. Capturing takes two warm-up calls and one captured call (about a second for the SD
2.1-base UNet) where torch.compile's whole-UNet compilation takes minutes.

    unet = GraphedCall(unet)
    with torch.no_grad():
        eps = unet(x, t, encoder_hidden_states=e, return_dict=False)[0]   # first call of a signature: capture

When a call replays:
  * only without gradients (the guidance's UNet calls run under no_grad), outside any dispatch mode (a FLOP
    counter must see the real calls), and only when every tensor argument (positional or keyword, also inside
    lists and tuples) is a CUDA tensor; any other call runs the wrapped module;
  * for the signature it was captured at: the nesting of the arguments, each tensor's shape, dtype, strides and
    device, and the value of every other argument (a float scale, return_dict). A new signature (another batch
    size) is captured once and kept; its graph shares one memory pool with the others.
A replay copies the arguments into the graph's static input buffers, replays, and returns a clone of the static
outputs, so a later replay never overwrites what an earlier call returned. The results are those of the wrapped
module up to float rounding (cuDNN may pick other algorithms at capture). A signature whose capture fails runs
the wrapped module from then on, with one warning.
"""

from __future__ import annotations

import warnings

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import _get_current_dispatch_mode


class GraphedCall(torch.nn.Module):
    def __init__(self, module: torch.nn.Module, warmup: int = 2):
        super().__init__()
        self.module = module
        self.warmup = warmup  # eager calls before a capture (cuDNN autotuning, lazy initialisation, compilation)
        self.replays = 0  # calls served by a graph (the others ran `module`)
        self._graphs: dict = {}  # signature -> (graph, static input leaves, static outputs) or None (capture failed)
        self._pool = None  # one memory pool for every graph of this module (they never run concurrently)

    def __getattr__(self, name):
        """The wrapped module's attributes (`config`, `dtype`...), as callers of the bare module read them."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            module = self.__dict__.get("_modules", {}).get("module")  # (absent while the wrapper is being built)
            if module is None:
                raise
            return getattr(module, name)

    @property
    def graph_count(self) -> int:
        """Signatures captured as a graph (failed captures not counted)."""
        return sum(entry is not None for entry in self._graphs.values())

    @staticmethod
    def _replayable(x: torch.Tensor) -> bool:
        return x.is_cuda

    def _signature(self, leaves: list, spec) -> tuple | None:
        """What a graph is captured for, or None when the call cannot replay (gradients, a tensor not on CUDA)."""
        if torch.is_grad_enabled() or _get_current_dispatch_mode() is not None:  # e.g. a FLOP counter: run it
            return None
        key = []
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                if not self._replayable(leaf):
                    return None
                key.append((tuple(leaf.shape), leaf.dtype, leaf.stride(), leaf.device))
            else:
                key.append(leaf)
        return (str(spec), *key) if any(isinstance(v, torch.Tensor) for v in leaves) else None

    def forward(self, *args, **kwargs):
        leaves, spec = pytree.tree_flatten((args, kwargs))
        try:
            signature = self._signature(leaves, spec)
            hash(signature)
        except TypeError:  # an argument that cannot be part of a key (a dict value): never replayed
            signature = None
        if signature is None:
            return self.module(*args, **kwargs)
        if signature not in self._graphs:
            self._graphs[signature] = self._capture(leaves, spec)
        entry = self._graphs[signature]
        if entry is None:
            return self.module(*args, **kwargs)
        graph, static_leaves, static_out = entry
        for static, leaf in zip(static_leaves, leaves, strict=True):
            if isinstance(static, torch.Tensor):
                static.copy_(leaf)
        graph.replay()
        self.replays += 1
        return pytree.tree_map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v, static_out)

    def _capture(self, leaves: list, spec):
        """Warm up on a side stream, capture one call at static copies of `leaves`; None if the capture fails."""
        static_leaves = [_static_copy(v) if isinstance(v, torch.Tensor) else v for v in leaves]
        args, kwargs = pytree.tree_unflatten(static_leaves, spec)
        device = next(v.device for v in static_leaves if isinstance(v, torch.Tensor))
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        try:
            with torch.cuda.stream(stream):  # warm-up off the default stream, as CUDA graph capture asks
                for _ in range(self.warmup):
                    self.module(*args, **kwargs)
            torch.cuda.current_stream(device).wait_stream(stream)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                static_out = self.module(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - an op that cannot be captured: this signature stays eager
            torch.cuda.synchronize(device)
            warnings.warn(f"{type(self.module).__name__}: CUDA graph capture failed, running eagerly ({e})",
                          stacklevel=3)
            return None
        return graph, static_leaves, static_out


def _static_copy(x: torch.Tensor) -> torch.Tensor:
    """A buffer with `x`'s shape, dtype, layout and values (real values: no NaN in the warm-up's autotuning); an
    expanded `x` (stride 0) gets a dense buffer, which every later call's values can be copied into."""
    return torch.empty_like(x).copy_(x)
