#!/usr/bin/env bash
# The main job: the benchmark matrix on this machine, then the report over every result file.
#   bash bench.sh [LABEL] [pytest options...]     e.g.  bash bench.sh laptop --quick
# Writes results/LABEL.json (LABEL defaults to the hostname; an existing file is kept
# unless FORCE=1) and the report in results/report/.
set -euo pipefail
cd "$(dirname "$0")"
label=${1:-$(hostname)}
shift || true
out=results/$label.json
if [ -e "$out" ] && [ -z "${FORCE:-}" ]; then
    echo "bench.sh: $out already exists; pass another LABEL or set FORCE=1 to overwrite" >&2
    exit 2
fi
start=$(date +%s)
pytest bench -rs --machine-label "$label" --benchmark-json "$out.tmp" "$@"
mv "$out.tmp" "$out"
echo "bench.sh: wrote $out in $(( $(date +%s) - start )) s"
python -m mnist_models report results/*.json --out results/report
