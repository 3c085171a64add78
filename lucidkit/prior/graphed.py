"""A module whose forward and backward are replayed as CUDA graphs at one fixed input signature.

For the VAE encoder of the fast path: it runs forward and backward once per update, always at the same shape, and
compiled it is still a few hundred kernel launches that the CPU must queue one by one. A replay queues them all at
once. (torch.compile's own CUDA graphs, "reduce-overhead", serve the UNet but not the encoder: they start a new
generation of their memory pool at every `cudagraph_mark_step_begin()`, which the UNet calls between the encoder's
forward and backward make, and a new generation may reuse the memory of the forward's saved activations.
`torch.cuda.make_graphed_callables` keeps a pool of its own.)

    encoder = GraphedModule(torch.compile(encoder))
    z = encoder(x)          # first call with grad: warm-up and capture (~1 s); later calls replay
    z.sum().backward()      # replays the backward graph

When a call replays:
  * only with gradients enabled, for a CUDA input that requires grad and has the captured shape, dtype and strides;
  * only when no earlier replay can still be backpropagated. A replay's outputs and saved activations live in the
    graph's static buffers, so a second replay would overwrite what the first one's backward needs: while the
    first is pending (its backward has not run and its graph is still alive), a new call runs the wrapped module
    instead, as does any other call. The results are the same either way.
"""

from __future__ import annotations

import weakref

import torch


class GraphedModule(torch.nn.Module):
    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module
        self.replays = 0  # calls served by the graphs (the others ran `module`)
        self._graphed = None  # the replaying callable, built on the first eligible call
        self._signature = None  # (shape, dtype, device, strides) it was captured for
        self._pending = None  # weak reference to the backward node of a replay whose backward has not run

    @property
    def graph_count(self) -> int:
        """Captured forward+backward pairs: 1 once captured, else 0."""
        return int(self._graphed is not None)

    @staticmethod
    def _eligible(x: torch.Tensor) -> bool:
        return torch.is_grad_enabled() and x.is_cuda and x.requires_grad

    def _capture(self, sample: torch.Tensor):
        """Warm up, capture the forward and backward graphs at `sample`, and return the replaying callable."""
        return torch.cuda.make_graphed_callables(lambda t: self.module(t), (sample,))

    def _replay_pending(self) -> bool:
        return self._pending is not None and self._pending() is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signature = (tuple(x.shape), x.dtype, x.device, x.stride())
        if not self._eligible(x) or self._replay_pending() or self._signature not in (None, signature):
            return self.module(x)
        if self._graphed is None:
            sample = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
            sample.copy_(x.detach()).requires_grad_(True)  # warm-up runs on real values: no NaN in autotuning
            self._graphed = self._capture(sample)
            self._signature = signature
        out = self._graphed(x)
        self.replays += 1
        self._pending = weakref.ref(out.grad_fn)

        def backward_started(grad: torch.Tensor) -> torch.Tensor:
            self._pending = None
            return grad

        out.register_hook(backward_started)
        return out
