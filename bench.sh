#!/usr/bin/env bash
# The main job: the benchmark matrix on this machine, then the report over every result file.
#   bash bench.sh [LABEL] [pytest options...]     e.g.  bash bench.sh laptop
# Writes results/LABEL.json (LABEL defaults to the hostname; an existing file is kept
# unless FORCE=1) and redraws the report in results/report/ from every full run there.
# With --quick (a few thousand images, one round) the run stays out of the record:
# runs/quick/LABEL.json, and a report of the quick runs in runs/quick/report/.
# Stopped early (Ctrl-C, a failed case, a crash), the cases that finished are kept in
# runs/partial/LABEL.json, and the exit code says why: 130 interrupted, else pytest's.
set -euo pipefail
cd "$(dirname "$0")"
label=${1:-$(hostname)}
shift || true
if ! [[ "$label" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$ ]]; then
    echo "bench.sh: LABEL must be a plain file name (letters, digits, . _ -), got '$label'" >&2
    exit 2
fi
dir=results
for arg in "$@"; do
    [ "$arg" = "--quick" ] && dir=runs/quick
done
out=$dir/$label.json
if [ -e "$out" ] && [ -z "${FORCE:-}" ]; then
    echo "bench.sh: $out already exists; pass another LABEL or set FORCE=1 to overwrite" >&2
    exit 2
fi
for folder in "$dir" runs/partial; do  # both writable before an hour of work, not after
    if ! mkdir -p "$folder" 2>/dev/null || ! probe=$(mktemp "$folder/.probe.XXXXXX" 2>/dev/null); then
        echo "bench.sh: cannot write in $folder; free it or run from a writable checkout" >&2
        exit 2
    fi
    rm -f "$probe"
done
start=$(date +%s)
status=0
pytest bench -rs --machine-label "$label" --benchmark-json "$out.tmp" "$@" || status=$?
if [ "$status" -ne 0 ]; then  # pytest: 1 a case failed, 2 interrupted, 3 internal error, 4 usage
    [ "$status" -eq 2 ] && status=130
    rm -f "$dir/.$label.json.tmp.partial."*.tmp  # a copy a kill cut off mid-write
    kept=runs/partial/$label.json
    for made in "$out.tmp" "$out.tmp.partial"; do  # pytest-benchmark's own, else the suite's per-case copy
        if [ -s "$made" ]; then
            mv "$made" "$kept"
            rm -f "$out.tmp" "$out.tmp.partial"
            echo "bench.sh: stopped (exit $status); the cases that finished are in $kept" >&2
            exit "$status"
        fi
    done
    rm -f "$out.tmp" "$out.tmp.partial"
    echo "bench.sh: stopped (exit $status) before any case finished; nothing kept" >&2
    exit "$status"
fi
mv "$out.tmp" "$out"
rm -f "$out.tmp.partial"
echo "bench.sh: wrote $out in $(( $(date +%s) - start )) s"
readme=()
[ "$dir" = results ] && [ -f README.md ] && readme=(--readme README.md)  # the record's leaderboard, also in the README
python -m mnist_models report "$dir"/*.json --out "$dir/report" --force "${readme[@]}"
