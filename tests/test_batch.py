"""`lucidkit batch`: job lists, folders, placement, and two Ray CPU workers end to end with a tiny prior."""

import json
import sys
import time

import pytest
import torch
import yaml
from click.testing import CliRunner

from lucidkit.batch.driver import plan_placement
from lucidkit.batch.jobs import job_state, read_rows, resolve_jobs
from lucidkit.batch.report import eta_seconds
from lucidkit.commands.cli import cli
from lucidkit.errors import UserError
from lucidkit.splat.ply import read_ply

from conftest import interrupted_at, one_line_error


def write(path, text):
    path.write_text(text)
    return path


# --- job lists ---------------------------------------------------------------------------------------------------


def test_text_list_skips_blank_lines_and_comments(tmp_path):
    rows = read_rows(write(tmp_path / "p.txt", "a red cube\n\n# not a job\n  a blue sphere  \n"))
    assert [(r.line, r.prompt) for r in rows] == [(1, "a red cube"), (4, "a blue sphere")]
    with pytest.raises(UserError, match="holds no jobs"):
        read_rows(write(tmp_path / "empty.txt", "# only a comment\n\n"))


def test_yaml_rows_carry_their_overrides_and_lines(tmp_path):
    path = write(tmp_path / "jobs.yaml", """\
- a red cube
- prompt: a house
  seed: 7
  preset: tiny
  set: {loop.steps: 3, guidance.method: sds}
- prompt: a penguin
  set: ["camera.fovy_deg=[30, 40]"]
  name: penguin-a
""")
    a, b, c = read_rows(path)
    assert (a.line, a.prompt, a.seed, a.overrides) == (1, "a red cube", None, {})
    assert (b.line, b.seed, b.preset) == (2, 7, "tiny")
    assert b.overrides == {"loop": {"steps": 3}, "guidance": {"method": "sds"}}
    assert (c.line, c.name, c.overrides) == (6, "penguin-a", {"camera": {"fovy_deg": [30, 40]}})


def test_csv_rows_with_dotted_columns_and_set(tmp_path):
    path = write(tmp_path / "jobs.csv", "prompt,seed,guidance.method,set\n"
                 "a red cube,3,sds,loop.steps=2; init.n_points=100\n"
                 "\n"
                 "a blue cube,,,\n")
    a, b = read_rows(path)
    assert (a.line, a.prompt, a.seed) == (2, "a red cube", 3)
    assert a.overrides == {"guidance": {"method": "sds"}, "loop": {"steps": 2}, "init": {"n_points": 100}}
    assert (b.line, b.prompt, b.seed, b.overrides) == (4, "a blue cube", None, {})


def test_sweep_is_the_explicit_grid(tmp_path):
    path = write(tmp_path / "sweep.yaml", "prompts: [a red cube, a house]\nseeds: [0, 1]\nmethods: [ism, sds]\n"
                 "set: {loop.steps: 2}\n")
    rows = read_rows(path)
    grid = [(r.prompt, r.seed, r.overrides["guidance"]["method"]) for r in rows]
    assert grid == [(p, s, m) for p in ("a red cube", "a house") for s in (0, 1) for m in ("ism", "sds")]
    assert all(r.overrides["loop"] == {"steps": 2} for r in rows)


@pytest.mark.parametrize("name, text, words", [
    ("bad-key.yaml", "- a cube\n- prompt: a house\n  sed: 3\n", ["line 2", "'sed'"]),
    ("bad-seed.yaml", "- a cube\n- a cone\n- {prompt: a house, seed: three}\n", ["line 3", "seed", "three"]),
    ("no-prompt.yaml", "- {seed: 3}\n", ["line 1", "no 'prompt'"]),
    ("avatar.yaml", "- a cube\n- {prompt: a knight, command: avatar}\n", ["line 2", "avatar", "not available"]),
    ("typo.yaml", "- {prompt: a knight, command: generat}\n", ["line 1", "generate, avatar"]),
    ("sweep.yaml", "prompts: [a cube]\nseeds: 3\n", ["line 1", "'seeds' must be a non-empty list"]),
    ("broken.yaml", "- [a cube\n", ["not valid YAML"]),
    ("bad.csv", "prompt,seed\na cube,1\na cone,x\n", ["line 3", "seed"]),
    ("no-header.csv", "a cube,1\n", ["line 1", "'prompt' column"]),
    ("bad-column.csv", "prompt,steps\na cube,3\n", ["line 1", "'steps'"]),
    ("bad-set.csv", "prompt,set\na cube,loop.steps\n", ["line 2", "key=value"]),
])
def test_bad_rows_name_their_line(tmp_path, name, text, words):
    with pytest.raises(UserError) as e:
        read_rows(write(tmp_path / name, text))
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_jobs_resolve_row_over_command_line_and_get_stable_folders(tmp_path):
    path = write(tmp_path / "jobs.yaml", "- a red cube\n- {prompt: a red cube, seed: 5, set: {loop.steps: 3}}\n")
    overrides = {"loop": {"steps": 2}, "prior": {"model": "toy"}}
    a, b = resolve_jobs(read_rows(path), tmp_path / "out", "tiny", overrides, seed=1, path=path)
    assert (a.config["seed"], a.config["loop"]["steps"]) == (1, 2)  # the command line's
    assert (b.config["seed"], b.config["loop"]["steps"]) == (5, 3)  # the row's
    assert a.folder.parent == tmp_path / "out" and a.folder.name.startswith("a-red-cube-s1-")
    again = resolve_jobs(read_rows(path), tmp_path / "out", "tiny", overrides, seed=1, path=path)
    assert [j.folder for j in again] == [a.folder, b.folder]  # a re-run finds the same folders
    other = resolve_jobs(read_rows(path), tmp_path / "out", "tiny", {**overrides, "loop": {"steps": 4}}, 1, path)
    assert other[0].folder != a.folder  # a changed job is a new job


def test_bad_fields_and_repeated_jobs_name_their_line(tmp_path):
    path = write(tmp_path / "jobs.yaml", "- a cube\n- {prompt: a cone, set: {guidance.delta: 3}}\n")
    with pytest.raises(UserError, match=r"line 2: unknown config key 'guidance.delta'"):
        resolve_jobs(read_rows(path), tmp_path, "tiny", {}, None, path)
    path = write(tmp_path / "twice.txt", "a cube\na cone\na cube\n")
    with pytest.raises(UserError, match="line 3 repeats the job of line 1"):
        resolve_jobs(read_rows(path), tmp_path, "tiny", {}, None, path)


def test_job_state_reads_the_folder(tmp_path):
    folder = tmp_path / "job"
    assert job_state(folder) == "new"
    folder.mkdir()
    (folder / "config.yaml").write_text("prompt: x\n")
    (folder / "checkpoint.pt").write_bytes(b"x")
    assert job_state(folder) == "resume"
    (folder / "manifest.json").write_text(json.dumps({"outputs": ["scene.ply", "checkpoint.pt"]}))
    assert job_state(folder) == "resume"  # the manifest names a scene.ply that is not there
    (folder / "scene.ply").write_bytes(b"x")
    assert job_state(folder) == "complete"


# --- placement and progress ---------------------------------------------------------------------------------------


def test_placement_one_worker_per_gpu_or_a_share_of_the_cores():
    p = plan_placement({"GPU": 4, "CPU": 16}, jobs=10, workers=None, gpus_per_job=None)
    assert (p.workers, p.gpus, p.threads) == (4, 1.0, 4)
    assert plan_placement({"GPU": 4, "CPU": 16}, 10, None, 2).workers == 2  # bigger models: 2 GPUs a job
    assert plan_placement({"GPU": 4, "CPU": 16}, 3, None, None).workers == 3  # never more workers than jobs
    cpu = plan_placement({"CPU": 8}, jobs=10, workers=3, gpus_per_job=None)
    assert (cpu.workers, cpu.gpus, cpu.threads, cpu.cpus) == (3, 0.0, 2, 2)
    assert plan_placement({"GPU": 2, "CPU": 8}, 10, 2, 0).gpus == 0.0  # --gpus-per-job 0: CPU workers
    assert plan_placement({"CPU": 8}, 10, 2, None, max_threads=1).threads == 1  # OMP_NUM_THREADS wins
    with pytest.raises(UserError, match="more GPUs than the Ray cluster has"):
        plan_placement({"GPU": 1, "CPU": 8}, 10, None, 2)
    with pytest.raises(UserError, match="no GPU"):
        plan_placement({"CPU": 8}, 10, None, 1)


def test_eta_from_finished_jobs_and_running_steps():
    now = time.time()
    assert eta_seconds({}, {}, queued=4, workers=2) is None
    running = {"w0": {"step": 50, "total": 100, "since": now - 10}}  # halfway after 10 s: 20 s a job
    assert eta_seconds({}, running, queued=2, workers=2, now=now) == pytest.approx((10 + 2 * 20) / 2)
    done = {0: {"status": "done", "seconds": 30.0}, 1: {"status": "skipped", "seconds": 0.0}}
    assert eta_seconds(done, {}, queued=4, workers=2) == pytest.approx(60.0)


# --- the command --------------------------------------------------------------------------------------------------


def test_without_ray_batch_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    path = write(tmp_path / "p.txt", "a red cube\n")
    result = CliRunner().invoke(cli, ["batch", str(path), "--out", str(tmp_path / "out")])
    one_line_error(result, 'pip install "lucidkit[batch]"')


def test_a_bad_list_stops_before_anything_runs(tmp_path):
    path = write(tmp_path / "p.yaml", "- a cube\n- {prompt: a knight, command: avatar}\n")
    result = CliRunner().invoke(cli, ["batch", str(path), "--out", str(tmp_path / "out")])
    one_line_error(result, "line 2", "avatar")
    assert not (tmp_path / "out").exists()


def test_two_ray_workers_run_skip_resume_and_report_failures(tiny_prior_dir, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    jobs_csv = write(tmp_path / "jobs.csv", "prompt,seed\na red cube,3\n,1\na blue sphere,4\na green cone,5\n")
    args = ["batch", str(jobs_csv), "--model", str(tiny_prior_dir), "--preset", "tiny", "--out", str(out),
            "--workers", "2", "--quiet"]
    # "a green cone" was interrupted at step 3 by an earlier `generate` into its batch folder
    from lucidkit.batch.jobs import read_rows as rows_of

    cone = resolve_jobs(rows_of(jobs_csv), out, "tiny", {"prior": {"model": str(tiny_prior_dir)}}, None)[3]
    with interrupted_at(3):
        interrupted = CliRunner().invoke(cli, ["generate", "a green cone", "--seed", "5", "--model",
                                               str(tiny_prior_dir), "--preset", "tiny", "--out", str(cone.folder),
                                               "--quiet"])
    assert interrupted.exit_code == 2 and job_state(cone.folder) == "resume"

    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 1, first.output  # one job failed
    assert "failed  '' (line 3): the prompt is empty" in first.output
    report = json.loads((out / "batch.json").read_text())
    assert [j["status"] for j in report["jobs"]] == ["done", "failed", "done", "done"]
    assert len(report["workers"]) == 2 and report["workers"][0]["threads"] >= 1
    folders = [out / j["folder"] for j in report["jobs"]]
    for i in (0, 2, 3):  # the files of a single `generate` run
        for name in ["scene.ply", "preview.png", "turntable.mp4", "config.yaml", "manifest.json", "checkpoint.pt"]:
            assert (folders[i] / name).stat().st_size > 0, (folders[i], name)
    red = json.loads((folders[0] / "manifest.json").read_text())
    assert (red["prompt"], red["seed"], red["steps"]) == ("a red cube", 3, 6)
    cone_manifest = json.loads((folders[3] / "manifest.json").read_text())
    assert folders[3] == cone.folder and cone_manifest["resumed_from_step"] == 3 and cone_manifest["steps"] == 6
    assert not folders[1].exists()  # the failed job left no half-made folder
    page = (out / "index.html").read_text()
    assert f'src="{folders[0].name}/preview.png"' in page and f'href="{folders[2].name}/scene.ply"' in page
    assert "the prompt is empty" in page

    # the same scene as `generate` makes for that prompt and seed: the worker's kept prior changes nothing
    single = tmp_path / "single"
    threads = report["workers"][0]["threads"]  # the same CPU thread count: sums in another order differ in float
    assert CliRunner().invoke(cli, ["generate", "a red cube", "--seed", "3", "--model", str(tiny_prior_dir),
                                    "--preset", "tiny", "--out", str(single), "--quiet",
                                    "--threads", str(threads)]).exit_code == 0
    a, b = read_ply(folders[0] / "scene.ply").splats, read_ply(single / "scene.ply").splats
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)

    # a second run skips the finished jobs (their files untouched) and reports the bad one again
    stamps = {f: (f / "scene.ply").stat().st_mtime_ns for f in (folders[0], folders[2], folders[3])}
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 1 and "3 skipped" in second.output and "1 failed" in second.output
    assert [j["status"] for j in json.loads((out / "batch.json").read_text())["jobs"]] == \
        ["skipped", "failed", "skipped", "skipped"]
    assert {f: (f / "scene.ply").stat().st_mtime_ns for f in stamps} == stamps

    # with the bad row gone every job is complete: exit 0 without starting Ray
    write(jobs_csv, "prompt,seed\na red cube,3\na blue sphere,4\na green cone,5\n")
    third = CliRunner().invoke(cli, args)
    assert third.exit_code == 0 and "3 skipped" in third.output and "0 failed" in third.output
    assert yaml.safe_load((folders[0] / "config.yaml").read_text())["prompt"] == "a red cube"
