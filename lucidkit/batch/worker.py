"""What runs inside a batch worker (a Ray actor): one job after another with the prior loaded once.

`Worker` is a plain class; the driver makes it an actor with `ray.remote(Worker).options(num_gpus=..., ...)`.
Ray gives each actor its own GPU (CUDA_VISIBLE_DEVICES), so `prior.device: auto` is that GPU. The worker keeps
the last prior it loaded and reuses it while jobs ask for the same prior config (model, LoRA, precision, ...);
a compiled UNet therefore compiles once per worker, not once per job. It writes only into the job's folder.

`ProgressBoard` is a small actor that workers tell their job and step; the driver reads it for its display.
"""

from __future__ import annotations

import dataclasses
import gc
import time
import traceback
from pathlib import Path

from lucidkit.errors import UserError

REPORT_EVERY_S = 0.5  # how often a worker tells the board its step (reading the step costs nothing on the GPU)


class ProgressBoard:
    """worker name -> what it is doing now: {"job": index, "prompt", "step", "total", "since"} (or None)."""

    def __init__(self):
        self.status: dict[str, dict | None] = {}

    def update(self, worker: str, status: dict | None) -> None:
        self.status[worker] = status

    def snapshot(self) -> dict[str, dict | None]:
        return dict(self.status)


class Worker:
    """Runs jobs (`run_job`) one at a time; keeps the prior of the last job for the next one."""

    def __init__(self, name: str, threads: int = 0, board=None):
        import torch

        if threads > 0:  # a fair share of the machine's cores when several CPU workers share it
            torch.set_num_threads(threads)
        self.name, self.board = name, board
        self.prior, self.prior_key = None, None

    def describe(self) -> dict:
        """Where this worker runs (for the display and the summary)."""
        import socket

        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        return {"name": self.name, "host": socket.gethostname(), "gpu": gpu, "threads": torch.get_num_threads()}

    def run_job(self, job: dict) -> dict:
        """Run one job ({"index", "prompt", "config", "folder"}) to the end; never raises.

        Returns {"index", "status": "done" | "skipped" | "failed", "error" (one line), "traceback" (unexpected
        errors only), "steps", "gaussians", "seconds", "resumed_from", "worker"}.
        """
        t0 = time.perf_counter()
        outcome = {"index": job["index"], "worker": self.name, "error": None, "traceback": None, "steps": None,
                   "gaussians": None, "resumed_from": None}
        self._report({"job": job["index"], "prompt": job["prompt"], "step": 0, "total": None, "since": time.time()})
        try:
            outcome.update(self._run(job))
        except UserError as e:
            outcome.update(status="failed", error=str(e))
        except Exception as e:  # noqa: BLE001 - one job's crash must not stop the batch; the driver reports it
            outcome.update(status="failed", error=f"{type(e).__name__}: {e}".splitlines()[0],
                           traceback=traceback.format_exc())
        finally:
            self._report(None)
        outcome["seconds"] = time.perf_counter() - t0
        return outcome

    def _run(self, job: dict) -> dict:
        from lucidkit import config as config_lib
        from lucidkit.batch.jobs import job_state
        from lucidkit.generate import GenerateConfig, run
        from lucidkit.runs import new_run, resume_run

        folder = Path(job["folder"])
        state = job_state(folder)
        if state == "complete":
            return {"status": "skipped"}
        callbacks = [self._step_reporter(job)]
        if state == "resume":
            folder, cfg, _ = resume_run(str(folder), GenerateConfig)
            prior = self._prior(cfg.prior)
            result = run(cfg, folder, resume=True, quiet=True, prior=prior, callbacks=callbacks)
        else:
            cfg = config_lib.from_dict(GenerateConfig, job["config"])
            if not cfg.prompt.strip():
                raise UserError("the prompt is empty")
            prior = self._prior(cfg.prior)
            with new_run(str(folder), cfg.prompt, overwrite=True) as folder:  # the job's own folder
                result = run(cfg, folder, resume=False, quiet=True, prior=prior, callbacks=callbacks)
        return {"status": "done", "steps": result.steps, "gaussians": result.gaussians,
                "resumed_from": None if state == "new" else _resumed_from(result.folder)}

    def _prior(self, prior_cfg):
        """The loaded prior for `prior_cfg`: the one kept from the last job if its config is the same."""
        from lucidkit.prior.config import load_prior

        key = dataclasses.astuple(prior_cfg)
        if key != self.prior_key:
            self.prior, self.prior_key = None, None  # free the old prior before loading another
            gc.collect()
            _empty_cuda_cache()
            self.prior = load_prior(prior_cfg)
            self.prior_key = key
        # each job embeds its own prompts; drop the last job's so a long batch does not collect them all
        self.prior._emb_cache.clear()
        return self.prior

    def _step_reporter(self, job: dict):
        """A loop callback that tells the board the step, at most every REPORT_EVERY_S seconds."""
        last = [0.0]
        since = time.time()

        def report(state, logs):
            now = time.perf_counter()
            if now - last[0] >= REPORT_EVERY_S:
                last[0] = now
                total = job["config"]["loop"]["steps"]
                self._report({"job": job["index"], "prompt": job["prompt"], "step": state.step, "total": total,
                              "since": since})

        return report

    def _report(self, status: dict | None) -> None:
        if self.board is not None:
            self.board.update.remote(self.name, status)  # fire and forget: the loop does not wait for the driver


def _resumed_from(folder: Path) -> int | None:
    """The step a resumed run started from, as its manifest records it."""
    import json

    try:
        return json.loads((Path(folder) / "manifest.json").read_text()).get("resumed_from_step")
    except (OSError, ValueError):
        return None


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
