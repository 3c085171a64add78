"""`lucidkit batch`: many prompts on every GPU (or CPU worker), on one machine or a Ray cluster.

- `jobs.py`: the job list (text / YAML / CSV / sweep) → one resolved config and run folder per job.
- `worker.py`: the Ray actor that runs jobs one after another with its prior loaded once.
- `driver.py`: Ray start-up, placement (one worker per GPU), handing out jobs, skip / resume / fail.
- `report.py`: the live display, the summary table, `index.html` and `batch.json`.
"""
