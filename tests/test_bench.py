"""The toy prior end to end: a CPU generate run matches its prompt, and the benchmarks' smoke versions run."""

import json

import yaml

from click.testing import CliRunner

from lucidkit.commands.cli import cli


def test_toy_generate_matches_the_prompt(tmp_path):
    """A short CPU run with the shipped toy prior makes an object the toy evaluator reads as a red cube in most
    views of the benchmark's two eval rings (polar 90° and 60°)."""
    from lucidkit.bench.quality import eval_cameras
    from lucidkit.cameras import CameraConfig
    from lucidkit.runs import render_views
    from lucidkit.splat.ply import read_ply
    from lucidkit.toyworld.evaluator import ToyEvaluator

    out = tmp_path / "cube"
    result = CliRunner().invoke(cli, ["generate", "a red cube", "--out", str(out), "--quiet",
                                      "--set", "loop.steps=300", "--set", "output.turntable_frames=0"])
    assert result.exit_code == 0, result.output
    rgb, alpha, _ = render_views(read_ply(out / "scene.ply").splats, eval_cameras(CameraConfig()))
    assert alpha.mean() > 0.02  # something is there
    accuracy = ToyEvaluator.load().prompt_accuracy(rgb, "a red cube")  # shape and colour both right
    assert accuracy > 0.5, accuracy


def test_quality_benchmark_smoke_writes_its_table(tmp_path):
    out = tmp_path / "quality.json"
    result = CliRunner().invoke(cli, ["bench", "quality", "--prompt", "a house", "--methods", "ism,ism-perpneg",
                                      "--steps", "4", "--set", "loop.batch_size=2", "--out", str(out),
                                      "--variant", "ism-g3=ism:guidance.guidance_scale=3;guidance.delta_t=25"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [r["method"] for r in data["runs"]] == ["ism", "ism-perpneg", "ism-g3"]
    assert data["variants"][0]["overrides"] == {"guidance": {"guidance_scale": 3, "delta_t": 25}}
    for r in data["runs"]:
        assert 0.0 <= r["prompt_accuracy"] <= 1.0 and 0.0 <= r["view_consistency"] <= 1.0 and r["psnr"] > 0
        assert 0.0 <= r["silhouette_iou"] <= 1.0 and r["size_ratio"] >= 0.0
    table = out.with_suffix(".txt").read_text()
    assert "ism-perpneg" in table and "janus" in table and "iou" in table and "ism-g3" in table
    saved = yaml.safe_load((tmp_path / "quality" / "ism-g3" / "a-house" / "config.yaml").read_text())
    assert saved["guidance"]["guidance_scale"] == 3 and saved["guidance"]["delta_t"] == 25


def test_quality_benchmark_refuses_a_malformed_variant(tmp_path):
    result = CliRunner().invoke(cli, ["bench", "quality", "--prompt", "a house", "--variant", "nomethod",
                                      "--out", str(tmp_path / "q.json")])
    assert result.exit_code == 2 and "--variant expects" in result.output


def test_benchmarks_refuse_an_unwritable_out_before_running(tmp_path):
    """--out under a regular file: one error naming the folder, before any run starts (no run folders, no
    traceback)."""
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results folder should be")
    for args in (["speed", "--arch", "tiny", "--device", "cpu", "--steps", "1"],
                 ["quality", "--prompt", "a red cube", "--steps", "2"]):
        result = CliRunner().invoke(cli, ["bench", *args, "--out", str(blocker / "r.json")])
        assert result.exit_code != 0
        assert "cannot write to output folder" in result.output and "is a file" in result.output, result.output
        assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_speed_benchmark_smoke_on_cpu(tmp_path):
    out = tmp_path / "new folder" / "speed.json"  # made when missing
    result = CliRunner().invoke(cli, ["bench", "speed", "--arch", "tiny", "--device", "cpu", "--steps", "1",
                                      "--gaussians", "300", "--cases", "fast,naive", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    cases = {c["case"]: c for c in data["cases"]}
    assert set(cases) == {"fast", "naive"}
    assert cases["fast"]["ms_per_update_late"] > 0 and cases["fast"]["tflop_per_late_update"] > 0
    assert "render_fwd_bwd" in cases["fast"]["breakdown_ms"]
    for c in cases.values():  # the recipe's mean weights the measured regimes: it lies among them
        regimes = [c[f"ms_per_update_{k}"] for k in ("early", "mid", "late")]
        assert min(regimes) <= c["ms_per_update_recipe"] <= max(regimes)
    assert "speed-up" in out.with_suffix(".txt").read_text()


def test_silhouette_scores_of_the_truth_and_of_a_scaled_copy():
    """The truth scored against itself covers the same pixels (IoU 1, size 1); a copy shrunk to half its size about
    the orbit centre reads as half the size, and overlaps a quarter of the truth's silhouette."""
    import math

    import torch

    from lucidkit.bench.quality import score_scene
    from lucidkit.cameras import CameraConfig
    from lucidkit.toyworld.captions import ground_truth
    from lucidkit.toyworld.evaluator import ToyEvaluator

    evaluator = ToyEvaluator.load()
    truth = ground_truth("a house")
    same = score_scene(truth, "a house", "truth", CameraConfig(), evaluator, 0.0)
    assert same.silhouette_iou > 0.99 and abs(same.size_ratio - 1) < 0.01
    half = dict(truth, means=truth["means"] * 0.5, scales=truth["scales"] + math.log(0.5))
    small = score_scene(half, "a house", "half", CameraConfig(), evaluator, 0.0)
    assert abs(small.size_ratio - 0.5) < 0.05, small.size_ratio
    assert 0.18 < small.silhouette_iou < 0.32, small.silhouette_iou
    assert torch.isfinite(torch.tensor(small.psnr)) and small.psnr < same.psnr
