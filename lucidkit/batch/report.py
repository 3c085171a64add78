"""What a batch shows and leaves behind: the live display, the summary table, `index.html` and `batch.json`.

The live display is one rich panel for the whole batch: a line of counts (done / running / failed / skipped /
queued) with an ETA, and one row per worker with its prompt and step. With `--quiet` it is one log line per
finished job instead.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from lucidkit.export import atomic_write, write_json

# the files of a run folder that the contact sheet links to, in this order (those that exist)
STATUS_LABELS = {"skipped": "done (an earlier run)"}  # on the contact sheet
LINKED_FILES = ("scene.ply", "turntable.mp4", "turntable.gif", "preview.png", "manifest.json", "config.yaml")


def counts(jobs, outcomes: dict[int, dict], running: dict[int, str]) -> dict[str, int]:
    """How many jobs are done / running / failed / skipped / queued."""
    status = [o["status"] for o in outcomes.values()]
    c = {s: status.count(s) for s in ("done", "failed", "skipped")}
    c["running"] = len(running)
    c["queued"] = len(jobs) - len(outcomes) - len(running)
    return c


def eta_seconds(outcomes: dict[int, dict], board: dict, queued: int, workers: int,
                now: float | None = None) -> float | None:
    """Seconds until the batch ends: the mean time of the jobs run so far (or, before any ended, the running
    jobs' projected times) × the work left, shared by the workers. None until there is anything to go by.
    `now` (default: the clock) is the time the running jobs' progress is read at."""
    took = [o["seconds"] for o in outcomes.values() if o["status"] == "done"]
    now = time.time() if now is None else now
    left_running, projected = 0.0, []
    for s in board.values():
        if s and s.get("total") and s["step"] > 0:
            elapsed = now - s["since"]
            projected.append(elapsed * s["total"] / s["step"])
            left_running += projected[-1] - elapsed
    per_job = sum(took) / len(took) if took else (sum(projected) / len(projected) if projected else None)
    if per_job is None:
        return None
    return (left_running + queued * per_job) / max(workers, 1)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class BatchDisplay:
    """The live view of a batch (rich), or log lines with `quiet`. Call `update()` often, `finished()` per job."""

    def __init__(self, jobs, workers: list[str], quiet: bool = False, console=None):
        from rich.console import Console

        self.jobs, self.workers, self.quiet = jobs, workers, quiet
        self.console = console or Console(stderr=True)
        self.live = None
        self.t0 = time.time()
        if not quiet:
            from rich.live import Live

            self.live = Live(console=self.console, refresh_per_second=4, transient=True)
            self.live.start()

    def update(self, outcomes: dict[int, dict], running: dict[int, str], board: dict) -> None:
        if self.live is not None:
            self.live.update(self._render(outcomes, running, board))

    def finished(self, job, outcome: dict, outcomes: dict[int, dict]) -> None:
        """One line per finished job (printed above the live view, or alone with --quiet)."""
        n = len(outcomes)
        if outcome["status"] == "failed":
            line = f"[{n}/{len(self.jobs)}] failed  {job.prompt!r} (line {job.line}): {outcome['error']}"
        else:
            line = (f"[{n}/{len(self.jobs)}] {outcome['status']:<7} {job.prompt!r} in {outcome['seconds']:.1f} s "
                    f"-> {job.folder}")
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()

    def _render(self, outcomes, running, board):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        c = counts(self.jobs, outcomes, running)
        eta = eta_seconds(outcomes, board, c["queued"], len(self.workers))
        head = (f"[bold]batch[/] {c['done'] + c['skipped'] + c['failed']}/{len(self.jobs)}  "
                f"[green]{c['done']} done[/] · [cyan]{c['running']} running[/] · [red]{c['failed']} failed[/] · "
                f"{c['skipped']} skipped · {c['queued']} queued  elapsed {_clock(time.time() - self.t0)}  "
                f"ETA {_clock(eta)}")
        table = Table(box=None, pad_edge=False, show_header=False)
        for name in self.workers:
            s = board.get(name)
            if not s:
                table.add_row(name, Text("idle", style="dim"), "", "")
                continue
            total, step = s.get("total"), s.get("step", 0)
            bar = ProgressBar(total=total or 1, completed=step if total else 0, width=30)
            steps = f"{step}/{total}" if total else "loading"
            table.add_row(name, Text(_short(s["prompt"])), bar, steps)
        return Group(Text.from_markup(head), table)


def _short(text: str, n: int = 48) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def summary_table(jobs, outcomes: dict[int, dict]):
    """A rich table: one row per job with its status, updates, Gaussians, time and folder (or error)."""
    from rich.table import Table
    from rich.text import Text

    colour = {"done": "green", "skipped": "dim", "failed": "red"}
    table = Table(title="lucidkit batch", show_lines=False)
    for col in ("#", "prompt", "status", "updates", "gaussians", "time", "folder / error"):
        table.add_column(col, overflow="fold")
    for job in jobs:
        o = outcomes.get(job.index, {"status": "not run", "error": "the batch stopped before this job"})
        status = o["status"]
        tail = o.get("error") if status in ("failed", "not run") else job.folder.name
        table.add_row(str(job.index + 1), Text(_short(job.prompt)), Text(status, style=colour.get(status, "yellow")),
                      str(o.get("steps") or ""), str(o.get("gaussians") or ""),
                      f"{o['seconds']:.1f} s" if o.get("seconds") and status == "done" else "", Text(tail or ""))
    return table


def write_batch_json(out: Path, jobs, outcomes: dict[int, dict], workers: list[dict]) -> Path:
    """`batch.json`: every job (line, prompt, folder, status, error, traceback) and the workers that ran them."""
    rows = []
    for job in jobs:
        o = outcomes.get(job.index, {"status": "not run"})
        rows.append({"line": job.line, "prompt": job.prompt, "folder": job.folder.name, **o})
    return write_json(out / "batch.json", {"jobs": rows, "workers": workers})


def write_index_html(out: Path, jobs, outcomes: dict[int, dict]) -> Path:
    """`index.html`: a contact sheet, one card per job with its preview and links to its files (relative paths,
    so the folder can be copied or served as it is)."""
    cards = []
    for job in jobs:
        o = outcomes.get(job.index, {"status": "not run"})
        rel = html.escape(job.folder.name)
        image = (f'<a href="{rel}/preview.png"><img src="{rel}/preview.png" alt="preview"></a>'
                 if (job.folder / "preview.png").is_file() else '<div class="none">no preview</div>')
        links = " · ".join(f'<a href="{rel}/{name}">{name}</a>' for name in LINKED_FILES
                           if (job.folder / name).is_file())
        error = f'<p class="error">{html.escape(o["error"])}</p>' if o.get("error") else ""
        label = STATUS_LABELS.get(o["status"], o["status"])
        cards.append(f'<div class="card {html.escape(o["status"])}">{image}<p class="prompt">'
                     f'{html.escape(job.prompt) or "(empty prompt)"}</p><p>{label} · seed {job.config["seed"]} · '
                     f'{rel}</p>{error}<p>{links}</p></div>')
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>lucidkit batch: {html.escape(out.name)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 1em; }}
.card {{ width: 420px; border: 1px solid #ccc; padding: .5em; }}
.card img {{ max-width: 100%; }}
.card.failed {{ border-color: #c00; }}
.prompt {{ font-weight: bold; }}
.error {{ color: #c00; font-family: monospace; }}
.none {{ height: 100px; background: #eee; }}
</style></head>
<body><h1>lucidkit batch: {html.escape(out.name)}</h1>
<p>{len(jobs)} jobs. Each folder holds the files of one run.</p>
<div class="grid">
{chr(10).join(cards)}
</div></body></html>
"""
    with atomic_write(out / "index.html", "w") as f:
        f.write(page)
    return out / "index.html"
