#!/usr/bin/env bash
# Scaling benchmark (issue 15 item 5): how each forensic query's time and peak memory
# grow with the store, from 1M to 10M events (or the sizes given).
#
#   bench/scale_bench.sh [RUNS=3] [N...]        default N: 1000000 5000000 10000000
#
# For each N: bench/query_bench.sh N RUNS with VG_LOADER=1 SKIP_PEERS=1 (events of
# gen_events.py, seed 42, over 24 h; loaded straight into a store, sealed, compacted; the
# five queries and the timeline over the compacted store and over the store as written),
# each N in its own scratch dir ($SCALE_DIR/N, default $TMPDIR/perfbench-scale), whose
# NDJSON is removed after the run unless VG_SCALE_KEEP=1 (10M events are ~9 GB). Prints,
# per query, the median seconds and the median peak RSS (MiB) of `vigil` at each N:
# no query's memory may grow with the store except by its answer (the rows column).
# Results: $SCALE_DIR/scale.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(1000000 5000000 10000000)
SCALE_DIR=${SCALE_DIR:-$(dirname "$(mktemp -u)")/perfbench-scale}
mkdir -p "$SCALE_DIR"
for n in "${SIZES[@]}"; do
    echo "[$(date +%H:%M:%S)] scale: $n events" >&2
    BENCH_SCRATCH=$SCALE_DIR/$n BENCH_RESULTS=$SCALE_DIR/$n/results VG_LOADER=1 SKIP_PEERS=1 \
        bench/query_bench.sh "$n" "$RUNS" > "$SCALE_DIR/$n.out" 2> "$SCALE_DIR/$n.err" ||
        { tail -20 "$SCALE_DIR/$n.err" >&2; echo "query_bench.sh $n failed" >&2; exit 1; }
    [[ ${VG_SCALE_KEEP:-0} == 1 ]] || rm -f "$SCALE_DIR/$n/data/events.ndjson" "$SCALE_DIR/$n/data/N"
done
{
    echo "== scaling: median seconds / median peak RSS of vigil (MiB) / rows, compacted store, $RUNS runs =="
    printf '%-18s' query
    for n in "${SIZES[@]}"; do printf ' | %24s' "$n events"; done
    echo
    for q in a_pod_1h b_authfail_top20 c_rare_cmdline c2_rare_rawjson d_user_timeline t_user_timeline; do
        printf '%-18s' "$q"
        for n in "${SIZES[@]}"; do
            printf ' | %24s' "$(awk -F'\t' -v q="$q" '$1 == q {printf "%s s %.0f MiB %s rows", $4, $7 / 1024, $2}' \
                "$SCALE_DIR/$n/results/vigil_queries.tsv")"
        done
        echo
    done
    for n in "${SIZES[@]}"; do
        echo "$n: $(grep -m1 '^vigil, sealed and compacted' "$SCALE_DIR/$n.out" || true)"
    done
} | tee "$SCALE_DIR/scale.txt"
