#!/usr/bin/env bash
# Every benchmark of docs/PERFORMANCE.md in one run, each table printed as it
# comes (issue 25's rows): the file-to-file and start-up rows (bench.py), the
# Python package (bench_python.py), DCP (bench_shard.py --paired-only) and
# transformers (bench_transformers.py). Needs a Release build in build-perf/
# and, for the Python rows, the ckpt package importable by the torch 2 venv
# (installed, or PYTHONPATH=DIR of `pip install --target DIR WHEEL`).
#
#   bash bench/run_all.sh [REPS]      (default 5; the Python routes run once)
set -uo pipefail
cd "$(dirname "$0")/.."
reps="${1:-5}"
ckpt=build-perf/ckpt
torch2="${CKPT_TORCH2_PYTHON:-.venv-torch2/bin/python}"
echo "== $(date -u '+%F %T') UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 bench/bench.py --reps "$reps" --python-reps 1 --ckpt "$ckpt" --torch2-python "$torch2"
echo "== $(date -u '+%T'), load $(cut -d' ' -f1-3 /proc/loadavg)"
if "$torch2" -c 'import ckpt' 2>/dev/null; then
  "$torch2" bench/bench_python.py --reps "$reps"
else
  echo "bench_python.py: skipped (the torch 2 venv cannot import ckpt)"
fi
echo "== $(date -u '+%T'), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$torch2" bench/bench_shard.py --paired-only --reps 3 --ckpt "$ckpt"
echo "== $(date -u '+%T'), load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 bench/bench_transformers.py --reps 3 --ckpt "$ckpt" --torch2-python "$torch2"
echo "== $(date -u '+%T'), load $(cut -d' ' -f1-3 /proc/loadavg)"
