#!/usr/bin/env bash
# Timeline benchmark (issue 13 item 1): a user's and a pod's timeline over the store
# bench/query_bench.sh leaves ($SCRATCH/vigil/store: the 5M bench events, compacted),
# beside `vigil search` of the same entity (what an analyst ran before `vigil timeline`:
# the events alone, without the alerts found through their seqs, the minute grouping or
# the related entities). Read-only: run query_bench.sh first (VG_LOADER=1 for a quick
# load); VG_STORE=DIR measures another store.
#
#   bench/timeline_bench.sh [RUNS=3]
#
# One first run, then RUNS timed runs, median seconds and peak RSS; what each timeline
# read and skipped (--explain). Results: $RESULTS/vigil_timeline.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${1:-3}
PEERS=${VG_BENCH_DIR:-$ROOT/../shared/bench}
BIN=${VG_BUILD:-build/release}
source "$PEERS/common.sh" # SCRATCH, RESULTS, log, median, timed, queries.env (Q_POD, Q_USER, Q_T0, Q_T1)
VIGIL=$ROOT/$BIN/query/vigil
[[ -x $VIGIL ]] || { echo "build first: cmake -S . -B $BIN -DCMAKE_BUILD_TYPE=Release && cmake --build $BIN -j --target vigil" >&2; exit 2; }
STORE=${VG_STORE:-$SCRATCH/vigil/store}
[[ -f $STORE/catalog.db ]] || { echo "no store at $STORE: run bench/query_bench.sh first" >&2; exit 2; }
T0=${Q_T0/ /T}Z
T1=${Q_T1/ /T}Z
OUT=$RESULTS/vigil_timeline.tsv
printf 'query\trows\tfirst_s\tmedian_s\trss_kb\truns_s\tcommand\n' > "$OUT"

run_query() { # name, then the vigil arguments
    local name=$1; shift
    local cmd=("$VIGIL" "$@" --store "$STORE" --format ndjson)
    local first rows runs=() rss=0 r
    first=$(timed "$SCRATCH/tl.out" "${cmd[@]}")
    rows=$(wc -l < "$SCRATCH/tl.out")
    for ((i = 0; i < RUNS; i++)); do
        r=$(timed "$SCRATCH/tl.out" "${cmd[@]}")
        runs+=("${r%% *}")
        rss=${r##* }
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rows" "${first%% *}" "$(median "${runs[@]}")" \
        "$rss" "${runs[*]}" "${cmd[*]}" >> "$OUT"
}

log "store $STORE; user $Q_USER, pod $Q_POD, window $T0 .. $T1; $RUNS runs"
run_query timeline_user timeline "user=$Q_USER"
run_query search_user search "user=$Q_USER"
run_query timeline_pod timeline "pod=$Q_POD"
run_query search_pod search "pod=$Q_POD"
run_query timeline_pod_1h timeline "pod=$Q_POD" --since "$T0" --until "$T1"
run_query search_pod_1h search "pod=$Q_POD" --since "$T0" --until "$T1"
run_query timeline_bare_user timeline "$Q_USER"
for q in "user=$Q_USER" "pod=$Q_POD"; do
    "$VIGIL" timeline --store "$STORE" --format ndjson --explain "$q" 2>&1 > /dev/null | sed 's/^/# /' >&2
done
column -t -s $'\t' "$OUT" | cut -c1-110
