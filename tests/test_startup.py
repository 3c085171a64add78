"""Start-up (issue 24) on the CPU: the ways of running the prior chosen by `prior.compile`, the CUDA-graph wrapper's
bookkeeping (with a stand-in for the graph, as tests/test_graphed.py does), the start-up time a run records, and
`lucidkit cache export|import`. The real captures run in the GPU tier (tests/test_gpu_modes.py)."""

import json
import subprocess
import sys
import tarfile

import pytest
import torch
from click.testing import CliRunner
from torch.utils import _pytree as pytree

from conftest import one_line_error
from lucidkit.commands.cli import cli
from lucidkit.prior.graphed_call import GraphedCall, _static_copy

# --- prior.compile ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, mode", [(True, "full"), (False, "off"), ("graphs", "graphs"),
                                         ("regional", "regional"), ("encoder", "encoder"), ("off", "off"),
                                         ("Full", "full")])
def test_compile_values_name_a_mode(value, mode):
    from lucidkit.generate import resolve_config

    cfg = resolve_config("tiny", {"prompt": "a cube", "prior": {"compile": value}})
    assert cfg.prior.compile == mode


def test_presets_keep_the_full_compile_and_a_bad_mode_names_the_allowed_ones():
    from lucidkit.config import parse_overrides
    from lucidkit.errors import UserError
    from lucidkit.generate import resolve_config

    assert resolve_config("default", {"prompt": "a cube"}).prior.compile == "full"  # `compile: true` in the YAML
    assert resolve_config("fast", parse_overrides(["prior.compile=graphs"])).prior.compile == "graphs"
    with pytest.raises(UserError) as e:
        resolve_config("default", parse_overrides(["prior.compile=fastest"]))
    assert all(name in str(e.value) for name in ("prior.compile", "off", "full", "graphs", "regional", "fastest"))


def test_cpu_prior_ignores_every_mode_and_records_it(tiny_prior_dir):
    from lucidkit.prior import DiffusionPrior

    x, t = torch.randn(2, 4, 8, 8), torch.tensor([500, 20])
    eager = DiffusionPrior.load(tiny_prior_dir)
    emb = eager.embed(["a cube", ""])
    expected = eager.predict_noise(x, t, emb)
    for mode in ("graphs", "regional", "encoder"):
        prior = DiffusionPrior.load(tiny_prior_dir)
        prior.enable_fast_path(compile=mode)
        assert prior.compile_mode == "off" and prior.source["compile_mode"] == "off"
        assert torch.allclose(prior.predict_noise(x, t, emb), expected, atol=1e-5)


def test_manifest_counts_graph_replays(tiny_prior_dir):
    """A run's manifest says how often the graph-replayed UNet replayed (`model.graphs`): on a CPU no call can
    replay, which the count shows as 0 replays in 0 graphs; an eager prior records no `graphs` at all."""
    from lucidkit.prior import DiffusionPrior
    from lucidkit.runs import manifest_header

    prior = DiffusionPrior.load(tiny_prior_dir)
    assert "graphs" not in manifest_header("generate", 0, prior)["model"]
    prior.unet = GraphedCall(prior.unet)
    with torch.no_grad():
        prior.predict_noise(torch.randn(2, 4, 8, 8), torch.tensor([500, 20]), prior.embed(["a cube", ""]))
    assert manifest_header("generate", 0, prior)["model"]["graphs"] == {"unet": {"replays": 0, "graphs": 0}}


# --- GraphedCall -------------------------------------------------------------------------------------------------


class _Net(torch.nn.Module):
    """A module called like the UNet: tensors, a keyword list of tensors, a float, a tuple out."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.config = {"in_channels": 4}

    def forward(self, x, t, residuals=(), scale=1.0, return_dict=True):
        y = self.conv(x) * scale + t.float().view(-1, 1, 1, 1)
        for r in residuals:
            y = y + r
        return (y,)


def test_graphed_call_runs_the_module_on_cpu_and_with_gradients():
    net = _Net()
    graphed = GraphedCall(net)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([3, 7])
    with torch.no_grad():
        assert torch.equal(graphed(x, t, scale=0.5)[0], net(x, t, scale=0.5)[0])
    assert graphed.replays == 0 and graphed._graphs == {}
    assert graphed.config == {"in_channels": 4}  # callers read the wrapped module's attributes


class _FakeGraph:
    def __init__(self, run):
        self.replay = run


class _CpuGraphedCall(GraphedCall):
    """Replays on the CPU through a stand-in graph that, like a CUDA graph, reads only the static inputs and
    writes only the static outputs (a wrong copy-in or a missing copy-out shows up as a wrong result)."""

    @staticmethod
    def _replayable(x):
        return True

    def _capture(self, leaves, spec):
        static_leaves = [_static_copy(v) if isinstance(v, torch.Tensor) else v for v in leaves]
        args, kwargs = pytree.tree_unflatten(static_leaves, spec)
        static_out = self.module(*args, **kwargs)

        def run():
            fresh = self.module(*args, **kwargs)
            pytree.tree_map(lambda s, f: s.copy_(f), static_out, fresh)

        return _FakeGraph(run), static_leaves, static_out


def test_graphed_call_replays_per_signature_and_returns_its_own_outputs():
    net = _Net()
    graphed = _CpuGraphedCall(net)
    gen = torch.Generator().manual_seed(0)
    res = [torch.randn(4, 4, 8, 8, generator=gen)]
    with torch.no_grad():
        outs, expected = [], []
        for batch in (4, 4, 8, 4, 8):
            x, t = torch.randn(batch, 4, 8, 8, generator=gen), torch.randint(0, 999, (batch,), generator=gen)
            kw = {"residuals": [r.repeat(batch // 4, 1, 1, 1) for r in res], "scale": 0.5}
            outs.append(graphed(x, t, **kw)[0])
            expected.append(net(x, t, **kw)[0])
        x = torch.randn(4, 4, 8, 8, generator=gen)
        t = torch.tensor(5).expand(4)  # an expanded timestep (stride 0), as predict_noise passes a scalar t
        outs.append(graphed(x, t, scale=2.0)[0])
        expected.append(net(x, t, scale=2.0)[0])
    # each call's result is its own: later replays did not overwrite the outputs of earlier ones
    for out, exp in zip(outs, expected, strict=True):
        assert torch.allclose(out, exp, atol=1e-6)
    assert len(graphed._graphs) == 3  # batch 4 and 8 with residuals; batch 4 without residuals at scale 2
    assert graphed.replays == 6
    with torch.enable_grad():  # gradients: never a replay
        graphed(x, t, scale=2.0)
    assert graphed.replays == 6


# --- the start-up a run records ---------------------------------------------------------------------------------


def test_process_age_counts_from_the_process_start_not_from_the_import():
    code = "import time; time.sleep(0.5); from lucidkit.runs import process_age_s; print(process_age_s())"
    age = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert age >= 0.5


def test_a_run_records_its_start_up_in_the_manifest_and_the_log(tiny_prior_dir, tmp_path):
    result = CliRunner().invoke(cli, ["generate", "a red cube", "--model", str(tiny_prior_dir), "--preset", "tiny",
                                      "--steps", "3", "--quiet", "--set", "output.turntable_frames=0",
                                      "--set", "prior.compile=graphs", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "Started updating after" in result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    timings = manifest["timings"]
    # from the process start: loading the prior and the first update are part of it
    assert timings["startup_s"] >= timings["load_prior_s"] + timings["first_update_s"]
    assert timings["s_per_update_after_first"] > 0
    assert manifest["model"]["compile_mode"] == "off"  # a CPU runs eagerly whatever the config asks


# --- lucidkit cache export | import -----------------------------------------------------------------------------


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    return tmp_path / "home-cache" / "lucidkit" / "inductor"


def test_cache_export_then_import_on_a_fresh_machine(cache_home, tmp_path, monkeypatch):
    files = {"fxgraph/ab/fcd123": b"graph", "triton/0/XYZ/kernel.cubin": bytes(range(256)) * 40,
             "aotautograd/k1/entry": b"aot"}
    for name, data in files.items():
        (cache_home / name).parent.mkdir(parents=True, exist_ok=True)
        (cache_home / name).write_bytes(data)
    (cache_home / "fxgraph" / "ab" / "fcd123.lock").write_bytes(b"")  # a lock is not part of the cache
    archive = tmp_path / "cache.tar.gz"
    result = CliRunner().invoke(cli, ["cache", "export", str(archive)])
    assert result.exit_code == 0, result.output
    assert "3 files" in result.output

    fresh = tmp_path / "fresh-machine" / "inductor"  # another machine: the user chose its cache folder
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(fresh))
    (fresh / "fxgraph").mkdir(parents=True)
    (fresh / "fxgraph" / "kept").write_bytes(b"already there")
    result = CliRunner().invoke(cli, ["cache", "import", str(archive)])
    assert result.exit_code == 0, result.output
    got = {p.relative_to(fresh).as_posix(): p.read_bytes() for p in fresh.rglob("*") if p.is_file()}
    assert got == {**files, "fxgraph/kept": b"already there"}
    assert [p.name for p in fresh.parent.iterdir()] == ["inductor"]  # no staging folder left behind


def test_cache_import_refuses_what_is_not_a_cache_archive(cache_home, tmp_path):
    not_gz = tmp_path / "notes.tar.gz"
    not_gz.write_text("hello")
    foreign = tmp_path / "foreign.tar.gz"  # a tar.gz, but not one `cache export` wrote
    with tarfile.open(foreign, "w:gz") as tar:
        tar.add(not_gz, arcname="inductor/x")
    for bad in (not_gz, foreign, tmp_path / "missing.tar.gz"):
        one_line_error(CliRunner().invoke(cli, ["cache", "import", str(bad)]), bad.name)
    assert not cache_home.exists() or not any(cache_home.rglob("*"))


def test_cache_import_refuses_members_outside_the_cache(cache_home, tmp_path, monkeypatch):
    from lucidkit.compile_cache import MARKER

    marker = tmp_path / MARKER
    marker.write_text(json.dumps({"format": 1}))
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(marker, arcname=MARKER)
        tar.add(marker, arcname="inductor/ok")
        tar.add(marker, arcname="inductor/../../escaped")
    one_line_error(CliRunner().invoke(cli, ["cache", "import", str(evil)]), "unexpected member")
    assert not any(cache_home.rglob("*"))  # not even the member before the bad one
    assert not (cache_home.parent.parent / "escaped").exists()


def test_cache_export_without_a_cache_says_so(cache_home, tmp_path):
    one_line_error(CliRunner().invoke(cli, ["cache", "export", str(tmp_path / "c.tar.gz")]), "no compile cache")
    assert not (tmp_path / "c.tar.gz").exists()


def test_bench_startup_measures_a_mode_in_its_own_process(tiny_prior_dir, tmp_path):
    """`lucidkit bench startup` on a CPU (a smoke run of what tools/gpu/startup.sh measures on a GPU): the table
    and the JSON name the mode and its start-up, read from the run's manifest."""
    out = tmp_path / "startup.json"
    result = CliRunner().invoke(cli, ["bench", "startup", "--model", str(tiny_prior_dir), "--preset", "tiny",
                                      "--device", "cpu", "--cases", "off", "--steps-off", "2",
                                      "--work", str(tmp_path / "work"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    case = json.loads(out.read_text())["cases"]["off-fresh"]
    assert case["applied_mode"] == "off" and case["updates"] == 2
    assert case["startup_s"] >= case["load_prior_s"] > 0
    assert case["startup_s"] <= case["process_wall_s"]  # measured inside the process it was timed around
    row = next(line for line in out.with_suffix(".txt").read_text().splitlines() if line.startswith("off "))
    assert f"{case['startup_s']:.1f}" in row
