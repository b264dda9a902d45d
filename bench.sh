#!/usr/bin/env bash
# The main job: the benchmark matrix on this machine, then the report over every result file.
#   bash bench.sh [LABEL] [pytest options...]     e.g.  bash bench.sh laptop
# Writes results/LABEL.json (LABEL defaults to the hostname; an existing file is kept
# unless FORCE=1) and redraws the report in results/report/ from every full run there.
# With --quick (a few thousand images, one round) the run stays out of the record:
# runs/quick/LABEL.json, and a report of the quick runs in runs/quick/report/.
set -euo pipefail
cd "$(dirname "$0")"
label=${1:-$(hostname)}
shift || true
dir=results
for arg in "$@"; do
    [ "$arg" = "--quick" ] && dir=runs/quick
done
out=$dir/$label.json
if [ -e "$out" ] && [ -z "${FORCE:-}" ]; then
    echo "bench.sh: $out already exists; pass another LABEL or set FORCE=1 to overwrite" >&2
    exit 2
fi
mkdir -p "$dir"
start=$(date +%s)
pytest bench -rs --machine-label "$label" --benchmark-json "$out.tmp" "$@"
mv "$out.tmp" "$out"
echo "bench.sh: wrote $out in $(( $(date +%s) - start )) s"
python -m mnist_models report "$dir"/*.json --out "$dir/report"
