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

Rules, all checked:
  * a call replays only when gradients are enabled, the input is a CUDA tensor that requires grad and has the
    captured shape, dtype and strides; any other call runs the wrapped module as before;
  * a replay's outputs and saved activations live in the graph's static buffers, so only the latest replay can be
    backpropagated: the backward of an earlier one raises instead of returning the wrong gradient.
"""

from __future__ import annotations

import torch


class GraphedModule(torch.nn.Module):
    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module
        self._graphed = None  # the replaying callable, built on the first eligible call
        self._signature = None  # (shape, dtype, device, strides) it was captured for
        self._replays = 0

    @staticmethod
    def _signature_of(x: torch.Tensor) -> tuple:
        return tuple(x.shape), x.dtype, x.device, x.stride()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and x.is_cuda and x.requires_grad):
            return self.module(x)
        signature = self._signature_of(x)
        if self._graphed is None:
            sample = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
            sample.copy_(x.detach()).requires_grad_(True)  # warm-up runs on real values: no NaN in autotuning
            self._graphed = torch.cuda.make_graphed_callables(lambda t: self.module(t), (sample,))
            self._signature = signature
        elif signature != self._signature:
            return self.module(x)
        self._replays += 1
        replay = self._replays
        out = self._graphed(x)

        def check_latest(grad: torch.Tensor) -> torch.Tensor:
            if replay != self._replays:
                raise RuntimeError(
                    "GraphedModule: backward of an earlier replay after a newer one; the graph's buffers now hold "
                    "the newer activations (run backward before calling the module again)"
                )
            return grad

        out.register_hook(check_latest)
        return out
