#!/usr/bin/env bash
# Two toy generate runs side by side on the same cores, each with 2 threads, under an OpenMP wait policy:
#   bash tools/perf/shared_cpu.sh PASSIVE     # lucidkit's default (the CLI sets it unless the user did)
#   bash tools/perf/shared_cpu.sh ACTIVE      # idle threads spin
#   bash tools/perf/shared_cpu.sh UNSET       # the OpenMP runtime's own default
# Prints the wall and CPU time of each run (GNU time). Results: docs/performance.md, "Several runs on one CPU".
set -u
policy=${1:-PASSIVE}
work=$(mktemp -d)
one() {
  if [ "$policy" = UNSET ]; then unset OMP_WAIT_POLICY; else export OMP_WAIT_POLICY=$policy; fi
  /usr/bin/time -f "%e s wall, %U s user, %S s sys" python3 -c "import sys; from lucidkit.commands.cli import cli; \
sys.argv = ['lucidkit', 'generate', 'a red cube', '--set', 'loop.steps=60', '--set', 'output.turntable_frames=0', \
'--threads', '2', '--quiet', '--out', '$work/$1']; cli()" > "$work/$1.log" 2>&1
}
one a & one b & wait
echo "$policy: $(tail -1 "$work/a.log") | $(tail -1 "$work/b.log")"
rm -rf "$work"
