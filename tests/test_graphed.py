"""GraphedModule's bookkeeping on the CPU: when a call may replay the captured graphs and when it must run the
module. The "graphs" here are a stand-in that, like CUDA graphs, keeps its activations in one static buffer that
every replay overwrites, so a wrong choice shows up as a wrong gradient. The real capture runs in the GPU tier
(tests/test_gpu_fastpath.py)."""

import torch

from lucidkit.prior.graphed import GraphedModule


class _StaticBufferReplay(torch.autograd.Function):
    """y = module(x) with the input saved in a buffer shared by all replays (as a CUDA graph's static input)."""

    @staticmethod
    def forward(ctx, x, owner):
        owner.buffer.copy_(x)
        ctx.owner = owner
        return owner.module(owner.buffer)

    @staticmethod
    def backward(ctx, grad):
        x = ctx.owner.buffer.detach().requires_grad_(True)
        with torch.enable_grad():
            y = ctx.owner.module(x)
        return torch.autograd.grad(y, x, grad)[0], None


class CpuGraphed(GraphedModule):
    @staticmethod
    def _eligible(x):
        return torch.is_grad_enabled() and x.requires_grad

    def _capture(self, sample):
        self.buffer = torch.empty_like(sample.detach())
        return lambda x: _StaticBufferReplay.apply(x, self)


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.SiLU(),
                               torch.nn.Conv2d(8, 4, 3, padding=1)).requires_grad_(False)


def _grad(module, x, weight=1.0):
    x = x.detach().clone().requires_grad_(True)
    (weight * module(x).square().sum()).backward()
    return x.grad


def test_replays_match_the_module_and_other_calls_run_it():
    net = _net()
    graphed = CpuGraphed(net)
    for shape in [(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 4, 4)]:  # capture + replay, replay, another shape
        x = torch.randn(shape)
        torch.testing.assert_close(_grad(graphed, x), _grad(net, x))
    assert graphed.replays == 2
    with torch.no_grad():
        x = torch.randn(2, 3, 8, 8)
        torch.testing.assert_close(graphed(x), net(x))
    assert graphed.replays == 2


def test_a_second_call_while_a_replay_awaits_its_backward_runs_the_module():
    """Two encodes before one backward (edit-image's anchor): a second replay would overwrite the first one's
    buffer and the first gradient would be wrong."""
    net = _net()
    graphed = CpuGraphed(net)
    xs = [torch.randn(2, 3, 8, 8, requires_grad=True) for _ in range(2)]
    first, second = graphed(xs[0]), graphed(xs[1])
    assert graphed.replays == 1
    (first.square().sum() + 2 * second.square().sum()).backward()
    torch.testing.assert_close(xs[0].grad, _grad(net, xs[0]))
    torch.testing.assert_close(xs[1].grad, _grad(net, xs[1], 2.0))
    graphed(xs[0]).sum()  # dropped without a backward: the next call may replay again
    graphed(xs[1]).sum().backward()
    assert graphed.replays == 3
