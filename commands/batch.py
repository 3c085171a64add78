"""`lucidkit batch`: a list of prompts on Ray workers (one per GPU, or CPU workers). Parses options, reads the job
list and calls `lucidkit.batch.driver.run_batch`; no maths here."""

from __future__ import annotations

import click

from lucidkit.commands import options

EPILOG = """\b
Examples:
  lucidkit batch prompts.txt --model sd21-base --preset fast --out runs/level1    # every local GPU
  lucidkit batch prompts.txt --model toy --workers 2 --out runs/toy               # CPU workers
  lucidkit batch prompts.yaml --address ray://head:10001 --out /shared/runs       # an existing Ray cluster
  lucidkit batch sweep.yaml --out runs/sweep       # prompts × seeds × methods from one file

\b
Job lists: prompts.txt has one prompt a line (blank lines and # comments are skipped). YAML: a list of prompts
or rows {prompt, seed, preset, set: {loop.steps: 800}, command: generate, name}; or a sweep
{prompts: [...], seeds: [0, 1], methods: [ism, sds]}. CSV: a header with prompt and optional seed, preset,
set ("k=v; k=v"), command, name, or dotted config fields as columns. Row settings win over the options here.
\b
Each job writes one run folder in --out (<prompt>-s<seed>-<hash>/) with the files of a single `generate` run.
Run the same command again to skip finished jobs and resume interrupted ones from their checkpoints. At the
end: a summary table, OUT/index.html (every preview, with links to the files) and OUT/batch.json. The exit
status is 0 when every job succeeded, 1 when any failed. Needs Ray: pip install "lucidkit[batch]".
"""


@click.command(cls=options.RunCommand, config="lucidkit.generate:GenerateConfig", epilog=EPILOG)
@click.argument("job_list", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Output folder: one run folder per job in it.")
@options.model
@options.preset
@click.option("--seed", type=int, help="Seed of the rows that give none (default: the preset's).")
@options.updates
@options.precision
@options.sets
@click.option("--workers", type=int, help="Number of workers: CPU workers without GPUs (default 1, sharing the "
              "cores), at most this many GPU workers otherwise (default: all GPUs).")
@click.option("--gpus-per-job", type=float, help="GPUs per worker (default 1; 0 = CPU workers).")
@click.option("--address", help="An existing Ray cluster (e.g. ray://head:10001); default: start Ray here.")
@options.quiet
@click.pass_context
def batch(ctx, job_list, out, preset, seed, sets, workers, gpus_per_job, address, quiet):
    """Run `generate` for every prompt of JOB_LIST (.txt, .yaml or .csv), one Ray worker per GPU."""
    import sys
    from pathlib import Path

    from rich.console import Console

    from lucidkit import config as config_lib
    from lucidkit.batch.driver import import_ray, run_batch
    from lucidkit.batch.jobs import read_rows, resolve_jobs
    from lucidkit.batch.report import summary_table, write_batch_json, write_index_html
    from lucidkit.export import check_writable_dir

    rows = read_rows(job_list)
    import_ray()  # before any work: without Ray, say how to install it
    overrides = config_lib.command_overrides(sets, options.given_fields(ctx))  # the flags win over --set
    jobs = resolve_jobs(rows, Path(out), preset, overrides, seed, path=job_list)
    out = check_writable_dir(out)  # only once the whole list is good
    console = Console(stderr=True)
    outcomes, workers_used = run_batch(jobs, out, address=address, workers=workers, gpus_per_job=gpus_per_job,
                                       quiet=quiet, console=console)
    write_batch_json(out, jobs, outcomes, workers_used)
    index = write_index_html(out, jobs, outcomes)
    Console().print(summary_table(jobs, outcomes))
    failed = [j for j in jobs if outcomes.get(j.index, {}).get("status") not in ("done", "skipped")]
    done = sum(1 for o in outcomes.values() if o["status"] == "done")
    skipped = sum(1 for o in outcomes.values() if o["status"] == "skipped")
    click.echo(f"{done} done, {skipped} skipped (already complete), {len(failed)} failed; contact sheet: {index}",
               err=True)
    if failed:
        sys.exit(1)
