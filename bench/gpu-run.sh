#!/usr/bin/env bash
# The accelerator checks in one command, for a machine lent for a few minutes:
#   here:   bash bench/gpu-run.sh --pack      # MNIST's four raw files, gzipped, into .mnist/ (~12 MB, ignored)
#   there:  bash bench/gpu-run.sh LABEL       # the accelerator's tests, its benchmark matrix, then the other tests
# With the device tool (/work/.library/device): run(command="bash bench/gpu-run.sh h200",
# carry=[".mnist"], timeout_s=540); about 4-6 minutes on an H200 (an estimate: not yet run).
# It writes $OUT/LABEL.json (or runs/gpu-run/LABEL.json without $OUT) and both logs; commit
# a full run's JSON to results/ and draw the report with bash bench.sh's last line.
# DEVICES=cpu bash bench/gpu-run.sh smoke --quick runs the same steps without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--pack" ]; then
    src=${MNIST_ROOT:-../shared/datasets}/MNIST/raw
    mkdir -p .mnist
    for f in "$src"/*-ubyte; do gzip -c "$f" > ".mnist/$(basename "$f").gz"; done
    du -sh .mnist
    exit 0
fi
label=${1:?usage: bash bench/gpu-run.sh LABEL [pytest bench options] | --pack}
shift
devices=${DEVICES:-accel}  # accel: whatever torch.accelerator finds (cuda, ROCm, xpu, mps)
out=${OUT:-runs/gpu-run}  # the device tool's $OUT; here, outside results/ until it is committed
mkdir -p "$out"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT  # the unpacked MNIST copy
mkdir -p "$root/MNIST/raw"
for f in .mnist/*.gz; do gunzip -c "$f" > "$root/MNIST/raw/$(basename "$f" .gz)"; done
export MNIST_ROOT=$root PYTHONUNBUFFERED=1 CI=true  # CI: a dataset that failed to unpack fails
python3 - "$devices" <<'PY'
import sys, torch
from mnist_models.machine.devices import accelerator_facts
if sys.argv[1] != "cpu" and not torch.accelerator.is_available():
    sys.exit("gpu-run.sh: torch.accelerator finds no accelerator here")
print("torch", torch.__version__, accelerator_facts() or "cpu only")
PY
status=0  # a failing test still lets the benchmark run: the lease is short
# First what only this machine can check, then its benchmark, then the rest as time allows:
# a lease that ends early has lost only the tests a CPU machine runs anyway.
python3 -m pytest -q -rs -p no:cacheprovider -m accelerator tests 2>&1 | tee "$out/$label-accel-tests.log" || status=1
python3 -m pytest bench -q -rs -p no:cacheprovider --devices "$devices" --machine-label "$label" \
    --benchmark-json "$out/$label.json" "$@" 2>&1 | tee "$out/$label-bench.log" || status=1
python3 -m pytest -q -rs -p no:cacheprovider -m "not accelerator" tests 2>&1 | tee "$out/$label-tests.log" || status=1
exit $status
