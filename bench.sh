#!/usr/bin/env bash
# The main job: the benchmark matrix on this machine, then the report over every result file.
#   bash bench.sh [LABEL] [pytest options...]     e.g.  bash bench.sh laptop
# Writes results/LABEL.json (LABEL defaults to the hostname; an existing file is kept
# unless FORCE=1) and redraws the report in results/report/ from every full run there.
# With --quick (a few thousand images, one round) the run stays out of the record:
# runs/quick/LABEL.json, and a report of the quick runs in runs/quick/report/.
# Stopped early (Ctrl-C, a failed case, a crash), the cases that finished are kept in
# runs/partial/LABEL.json, and the exit code says why: 130 interrupted, else pytest's.
# It is `mnist-bench run`, which a pip-installed suite has without this checkout.
set -euo pipefail
cd "$(dirname "$0")"
if [ $# -gt 0 ]; then  # the first argument is LABEL, whatever it looks like
    label=$1
    shift
    exec python -m mnist_models run "--label=$label" "$@"
fi
exec python -m mnist_models run
