#!/usr/bin/env bash
# The main job: the benchmark matrix on this machine, then the report over every result file.
#   bash bench.sh [LABEL] [pytest options...]     e.g.  bash bench.sh laptop
# First use in a fresh clone: makes .venv and installs mnist-bench there with its test
# extras (a few minutes), unless the python at hand has it installed already.
# Writes results/LABEL.json (LABEL defaults to the hostname; an existing file is kept
# unless FORCE=1) and redraws the report in results/report/ from every full run there.
# With --quick (a few thousand images, one round) the run stays out of the record:
# runs/quick/LABEL.json, and a report of the quick runs in runs/quick/report/.
# Stopped early (Ctrl-C, a failed case, a crash), the cases that finished are kept in
# runs/partial/LABEL.json, and the exit code says why: 130 interrupted, else pytest's.
# It is `mnist-bench run`, which a pip-installed suite has without this checkout.
set -euo pipefail
cd "$(dirname "$0")"

installed() {  # the python in $1 has mnist-bench installed (its entry points, its dependencies)
    "$1" -c "import importlib.metadata as m, torch, torchvision, pytest_benchmark; m.version('mnist-bench')" \
        >/dev/null 2>&1
}

python=${PYTHON:-python3}
if ! installed "$python"; then
    python=.venv/bin/python
    if ! installed "$python"; then
        echo "bench.sh: first use: making .venv and installing mnist-bench and its test extras there" \
             "(a few minutes; pip's log in .venv/install.log)" >&2
        python3 -m venv .venv
        if ! .venv/bin/pip install --disable-pip-version-check -e ".[dev]" >.venv/install.log 2>&1; then
            tail -n 5 .venv/install.log >&2
            echo "bench.sh: installing into .venv failed (the lines above; the whole log: .venv/install.log)" >&2
            exit 3
        fi
    fi
fi
exec "$python" -m mnist_models run "$@"  # LABEL wherever it stands among the options
