"""Round 11b: are the convolutions of the compiled UNet and VAE encoder slower than the same convolutions eager?

`bench/cudnn_search.py` timed the eager UNet's convolution kernels at 4.3 ms per B=4 call (cuDNN attention
included), where round 2's profile of the compiled production UNet showed 5.9 ms; the eager encoder's at 12.2 ms
per forward+backward against ~15.5 ms compiled. This script profiles, in one process, each cuDNN convolution call
(forward, and the encoder's input-gradient backward) eager and compiled, attributes kernel time to the call's
shapes, and prints the input and weight strides the compiled code passes, so that a difference can be traced
to the layout inductor chooses. Families (bench/profile_levers.py) come from the production settings too:
compiled "reduce-overhead" replays for the UNet, the compiled encoder replayed by `GraphedModule`.

    python3 bench/conv_anatomy.py > $OUT/conv_anatomy.txt
"""

from __future__ import annotations

import sys
import time

import torch

from cudnn_search import B, SIZE, kernel_ms
from profile_levers import profiled

CONV_OPS = ("aten::convolution", "aten::convolution_backward")


def conv_calls(fn, calls: int = 2) -> dict:
    """{(op, input shape, weight shape, stride/padding): [ms per call, input strides, weight strides, kernels]}.

    Read from the profiler's Chrome trace (the same across torch versions): each kernel is tied to its launch by
    the correlation id, the launch to the convolution op that encloses it on the same thread."""
    import json
    import tempfile

    prof = profiled(fn, calls, cpu=True, shapes=True)
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        prof.export_chrome_trace(f.name)
        events = json.load(open(f.name))["traceEvents"]
    convs = [e for e in events if e.get("cat") == "cpu_op" and e.get("name") in CONV_OPS]
    launches = {e["args"]["correlation"]: e for e in events
                if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {})}
    rows: dict = {}
    for k in (e for e in events if e.get("cat") == "kernel"):
        launch = launches.get(k.get("args", {}).get("correlation"))
        if launch is None:
            continue
        op = next((c for c in convs if c["tid"] == launch["tid"] and c["ts"] <= launch["ts"] <= c["ts"] + c["dur"]),
                  None)
        if op is None:
            continue
        a = op["args"]
        dims, strides, concrete = a.get("Input Dims", []), a.get("Input Strides"), a.get("Concrete Inputs", [])
        # forward: (input, weight, bias, stride, padding, ...); backward: (grad_out, input, weight, ...)
        x_i, w_i = (0, 1) if op["name"] == "aten::convolution" else (1, 2)
        key = (op["name"].split("::")[1], tuple(dims[x_i]), tuple(dims[w_i]), str(concrete[3:6]))
        row = rows.setdefault(key, [0.0, tuple(strides[x_i]) if strides else "?",
                                    tuple(strides[w_i]) if strides else "?", set()])
        row[0] += k["dur"] / calls / 1e3
        row[3].add(k["name"][:60])
    return rows


def compare(label: str, eager: dict, compiled: dict, top: int = 14) -> None:
    te, tc = (sum(r[0] for r in d.values()) for d in (eager, compiled))
    print(f"-- {label}: convolution ops {te:.2f} ms eager, {tc:.2f} ms compiled (per call, kernels attributed by op)")
    keys = sorted(set(eager) | set(compiled), key=lambda k: -abs(compiled.get(k, [0])[0] - eager.get(k, [0])[0]))
    for k in keys[:top]:
        e, c = eager.get(k), compiled.get(k)
        print(f"   {k[0]:<20} x{k[1]} w{k[2]} {k[3]}")
        for name, r in (("eager", e), ("compiled", c)):
            if r:
                print(f"      {name:<9}{r[0]:7.3f} ms  x strides {r[1]}  w strides {r[2]}  {sorted(r[3])[:2]}")
            else:
                print(f"      {name:<9}   (no such call)")


def families(label: str, fn) -> None:
    k = kernel_ms(fn)
    print(f"   {label:<40} " + "  ".join(f"{n} {v:.2f}" for n, v in sorted(k.items(), key=lambda kv: -kv[1])), flush=True)


def eager_vs_compiled(label: str, module, make_call):
    """Convolution calls and kernel families of `make_call(module)` eager, then compiled (no CUDA graphs);
    returns the compiled module."""
    eager = conv_calls(make_call(module))
    families("eager", make_call(module))
    t0 = time.monotonic()
    compiled_module = torch.compile(module, dynamic=False)
    make_call(compiled_module)()
    print(f"   (compiled, no CUDA graphs, in {time.monotonic() - t0:.0f} s)", flush=True)
    compiled = conv_calls(make_call(compiled_module))
    families("compiled, no CUDA graphs", make_call(compiled_module))
    compare(label, eager, compiled)
    return compiled_module


def main() -> None:
    from lucidkit.graphed import GraphedModule
    from lucidkit.prior import DiffusionPrior

    print(f"{torch.cuda.get_device_name()} torch {torch.__version__} cuDNN {torch.backends.cudnn.version()}", flush=True)
    torch.manual_seed(0)
    prior = DiffusionPrior.from_arch("sd21-base", device="cuda", dtype="bf16", seed=0)
    prior.enable_fast_path(compile=False)
    unet = prior.unet
    h = prior.latent_size
    emb = torch.randn(B, 77, unet.config.cross_attention_dim, device="cuda", dtype=torch.bfloat16)
    x = torch.randn(B, 4, h, h, device="cuda", dtype=torch.bfloat16)
    t = torch.full((B,), 400, device="cuda")

    def call(module):
        def run():
            with torch.no_grad():
                module(x, t, encoder_hidden_states=emb)
        return run

    print("== UNet, B=4", flush=True)
    eager_vs_compiled("UNet B=4", unet, call)
    t0 = time.monotonic()
    compiled_ro = prior.compiled_unet()
    for _ in range(3):
        call(compiled_ro)()
    print(f"   (reduce-overhead in {time.monotonic() - t0:.0f} s)", flush=True)
    families("compiled, reduce-overhead (production)", call(compiled_ro))
    del compiled_ro
    torch._dynamo.reset()

    print("== VAE encoder forward + backward (input gradient), 4x512²", flush=True)
    encoder = prior.channels_last_encoder()
    images = torch.rand(B, 3, SIZE, SIZE, device="cuda").to(memory_format=torch.channels_last)
    images = (images * 2 - 1).to(torch.bfloat16).requires_grad_(True)

    def fwd_bwd(module):
        def run():
            z = module(images)
            z.backward(torch.ones_like(z))
            images.grad = None
        return run

    compiled_enc = eager_vs_compiled("encoder fwd+bwd", encoder, fwd_bwd)
    graphed = GraphedModule(compiled_enc)
    families("compiled + CUDA graphs (production)", fwd_bwd(graphed))


if __name__ == "__main__":
    sys.exit(main())
