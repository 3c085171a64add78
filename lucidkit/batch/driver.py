"""The batch driver: start (or join) Ray, place one worker per GPU (or CPU workers), hand out jobs, report.

Jobs are handed out one at a time to whichever worker is free (`ray.wait` on the running ones), so a slow
prompt never holds up a queue behind it. A job whose folder is already complete is skipped without starting
Ray at all. A worker process that dies (killed, out of memory) fails its job and leaves the batch; the others
go on.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from lucidkit.batch.jobs import Job, job_state
from lucidkit.batch.report import BatchDisplay
from lucidkit.errors import UserError

INSTALL_HINT = 'lucidkit batch needs Ray: pip install "lucidkit[batch]"'


def import_ray():
    """Ray, or one clear line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return ray


@dataclass
class Placement:
    """How many workers, and what each asks Ray for."""

    workers: int
    gpus: float
    """GPUs per worker (0: a CPU worker)."""
    cpus: int
    """CPUs Ray reserves per worker."""
    threads: int
    """torch threads per worker (a fair share of the cores)."""
    note: str = ""


def plan_placement(resources: dict, jobs: int, workers: int | None, gpus_per_job: float | None,
                   max_threads: int | None = None) -> Placement:
    """Workers from the cluster's resources: one per `gpus_per_job` GPUs (default 1, at most `workers`), or,
    without GPUs (or with `gpus_per_job` 0), `workers` CPU workers (default 1) sharing the cores. Never more
    workers than jobs. `max_threads` caps each worker's torch threads (the user's OMP_NUM_THREADS)."""
    gpus, cpus = float(resources.get("GPU", 0)), max(int(resources.get("CPU", 1)), 1)
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    per_job = 1.0 if gpus_per_job is None else gpus_per_job
    if per_job < 0:
        raise UserError(f"--gpus-per-job must be 0 (CPU workers) or more, got {gpus_per_job}")
    if per_job > 0 and gpus >= per_job:
        n = int(gpus // per_job) if workers is None else min(int(gpus // per_job), workers)
        n = max(min(n, jobs), 1)
        threads = min(max(cpus // n, 1), max_threads or cpus)
        return Placement(n, per_job, 1, threads, f"{n} GPU worker(s), {per_job:g} GPU each")
    if per_job > 0 and gpus > 0:
        raise UserError(f"--gpus-per-job {per_job:g} asks for more GPUs than the Ray cluster has ({gpus:g})")
    if gpus_per_job and gpus == 0:
        raise UserError(f"--gpus-per-job {gpus_per_job:g}: the Ray cluster has no GPU; use --gpus-per-job 0 "
                        f"(CPU workers) or --address of a cluster with GPUs")
    n = max(min(workers or 1, jobs), 1)
    threads = min(max(cpus // n, 1), max_threads or cpus)
    why = "" if per_job == 0 else "no GPU found: "
    return Placement(n, 0.0, threads, threads, f"{why}{n} CPU worker(s), {threads} thread(s) each")


def run_batch(jobs: list[Job], out: Path, address: str | None = None, workers: int | None = None,
              gpus_per_job: float | None = None, quiet: bool = False, console=None) -> tuple[dict, list[dict]]:
    """Run every job that is not complete yet; return ({job index: outcome}, [worker descriptions])."""
    outcomes: dict[int, dict] = {}
    todo = deque()
    for job in jobs:
        if job_state(job.folder) == "complete":
            outcomes[job.index] = {"index": job.index, "status": "skipped", "error": None, "seconds": 0.0}
        else:
            todo.append(job)
    if not todo:
        return outcomes, []

    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(ray, address)
    try:
        return _run_on_workers(ray, jobs, todo, outcomes, workers, gpus_per_job, quiet, console)
    finally:
        if started_here:
            ray.shutdown()


def _init_ray(ray, address: str | None) -> None:
    """Ray started here, quietly (no dashboard, worker logs kept in Ray's log files), or joined at `address`."""
    kwargs = dict(logging_level=logging.ERROR, log_to_driver=False)
    if address is None:
        kwargs.update(include_dashboard=False)
    try:
        with warnings.catch_warnings():  # Ray's own warning about a timeout repeats the error below
            warnings.simplefilter("ignore")
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise UserError(f"cannot start or reach {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from None


def _run_on_workers(ray, jobs, todo: deque, outcomes: dict, workers, gpus_per_job, quiet, console):
    from lucidkit.batch.worker import ProgressBoard, Worker

    cap = os.environ.get("OMP_NUM_THREADS", "")
    plan = plan_placement(ray.cluster_resources(), len(todo), workers, gpus_per_job,
                          max_threads=int(cap) if cap.isdigit() else None)
    board = ray.remote(ProgressBoard).options(num_cpus=0).remote()
    names = [f"{'gpu' if plan.gpus else 'cpu'}-worker-{i}" for i in range(plan.workers)]
    actor_cls = ray.remote(Worker).options(num_gpus=plan.gpus, num_cpus=plan.cpus)
    actors = {name: actor_cls.remote(name, plan.threads, board) for name in names}
    try:
        described = ray.get([a.describe.remote() for a in actors.values()])  # waits until every worker is placed
    except ray.exceptions.RayError as e:
        raise UserError(f"the batch workers could not start ({type(e).__name__}); on a cluster, lucidkit must be "
                        f"installed on every node") from None
    display = BatchDisplay(jobs, names, quiet=quiet, console=console)
    display.console.print(f"lucidkit batch: {len(todo)} job(s) to run, {len(outcomes)} already complete; "
                          f"{plan.note}", markup=False, highlight=False, soft_wrap=True)
    idle, running = list(names), {}  # running: object ref -> (worker name, job)
    try:
        while todo or running:
            while idle and todo:
                name, job = idle.pop(0), todo.popleft()
                ref = actors[name].run_job.remote({"index": job.index, "prompt": job.prompt, "config": job.config,
                                                   "folder": str(job.folder)})
                running[ref] = (name, job)
            if not running:  # every worker died: the jobs left cannot run
                for job in todo:
                    outcomes[job.index] = _failed(job, "no worker left (every worker process died)")
                break
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                name, job = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                    idle.append(name)
                except ray.exceptions.RayError as e:  # the worker process died; it takes no more jobs
                    outcome = _failed(job, f"worker {name} died ({type(e).__name__}: its process was killed, ran "
                                           f"out of memory or crashed; see Ray's worker logs)")
                outcomes[job.index] = outcome
                display.finished(job, outcome, outcomes)
            display.update(outcomes, {j.index: n for n, j in running.values()}, ray.get(board.snapshot.remote()))
    except KeyboardInterrupt:
        raise UserError(f"interrupted with {len(running)} job(s) running; their checkpoints are kept. Run the "
                        f"same command again to skip the finished jobs and resume the others") from None
    finally:
        display.stop()
    return outcomes, described


def _failed(job: Job, error: str) -> dict:
    return {"index": job.index, "status": "failed", "error": error, "traceback": None, "seconds": 0.0}
