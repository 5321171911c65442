#!/usr/bin/env bash
# `vigil sql` beside `vigil stats` on the same store: the top 20 failing source IPs
# (issue 13's benchmark: sql within 2x of stats), and two window queries that exercise the
# push-down (a time range; an equality on an indexed field).
#
#   bench/sql_bench.sh [STORE] [RUNS=3]
#
# STORE defaults to the compacted store bench/query_bench.sh leaves in its scratch dir
# ($SCRATCH/vigil/store: 5M events of ../shared/bench/gen_events.py, seed 42). Each query
# runs once untimed, then RUNS times; medians of wall time. The answers of the two top-20
# commands must be the same (the script fails otherwise). Needs a release build
# (VG_BUILD, default build/release). Results: $RESULTS/vigil_sql.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PEERS=${VG_BENCH_DIR:-$ROOT/../shared/bench}
BIN=${VG_BUILD:-build/release}
source "$PEERS/common.sh" # SCRATCH, RESULTS, log, median, timed, queries.env
STORE=${1:-$SCRATCH/vigil/store}
RUNS=${2:-3}
VIGIL=$ROOT/$BIN/query/vigil
[[ -x $VIGIL ]] || { echo "build first: cmake -S . -B $BIN -DCMAKE_BUILD_TYPE=Release && cmake --build $BIN -j --target vigil" >&2; exit 2; }
[[ -f $STORE/catalog.db ]] || { echo "no store at $STORE (run bench/query_bench.sh, or give one)" >&2; exit 2; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

T0=$(date -u -d "$Q_T0" +%Y-%m-%dT%H:%M:%SZ)
T1=$(date -u -d "$Q_T1" +%Y-%m-%dT%H:%M:%SZ)
names=(stats_top20 sql_top20 search_pod_1h sql_pod_1h sql_window_count)
cmds=(
    "$VIGIL stats --store $STORE --format csv outcome=failure --by src_ip --top 20"
    "$VIGIL sql --store $STORE --format csv \"SELECT src_ip, count(*) AS count FROM events WHERE outcome = 'failure' GROUP BY src_ip ORDER BY count DESC, src_ip LIMIT 20\""
    "$VIGIL search --store $STORE --format ndjson pod=$Q_POD --since $T0 --until $T1"
    "$VIGIL sql --store $STORE --format ndjson \"SELECT * FROM events WHERE pod = '$Q_POD' AND ts >= '$T0' AND ts < '$T1'\""
    "$VIGIL sql --store $STORE --format csv \"SELECT source, count(*) FROM events WHERE ts BETWEEN '$T0' AND '$T1' GROUP BY 1\""
)
printf 'query\trows\tfirst_s\tmedian_s\truns_s\tcommand\n' > "$RESULTS/vigil_sql.tsv"
for i in "${!names[@]}"; do
    walls=()
    for r in $(seq 0 "$RUNS"); do
        read -r wall _ < <(timed_sh "$W/${names[$i]}.out" "${cmds[$i]}")
        if [[ $r == 0 ]]; then first=$wall; continue; fi
        walls+=("$wall")
    done
    rows=$(wc -l < "$W/${names[$i]}.out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${names[$i]}" "$rows" "$first" "$(median "${walls[@]}")" \
        "${walls[*]}" "${cmds[$i]#"$ROOT/"}" >> "$RESULTS/vigil_sql.tsv"
    log "${names[$i]}: rows $rows, median $(median "${walls[@]}") s (runs ${walls[*]})"
done
# the same top 20: stats prints "src_ip,count" rows (ties in any order), sql sorted ties
norm() { tail -n +2 "$1" | tr -d '"\r' | sort; }
if ! diff <(norm "$W/stats_top20.out") <(norm "$W/sql_top20.out") > "$W/diff"; then
    # ties at the 20th count may be cut differently: compare the counts, then the IPs above it
    cut -d, -f2 <(norm "$W/stats_top20.out") | sort -n > "$W/a"
    cut -d, -f2 <(norm "$W/sql_top20.out") | sort -n > "$W/b"
    diff "$W/a" "$W/b" > /dev/null || { cat "$W/diff"; echo "stats and sql disagree" >&2; exit 1; }
fi
s=$(awk -F'\t' '$1 == "stats_top20" {print $4}' "$RESULTS/vigil_sql.tsv")
q=$(awk -F'\t' '$1 == "sql_top20" {print $4}' "$RESULTS/vigil_sql.tsv")
echo "top 20 failing IPs: vigil stats $s s, vigil sql $q s ($(awk -v a="$q" -v b="$s" 'BEGIN{printf "%.2fx", a/b}') of stats); same answer"
column -t -s $'\t' "$RESULTS/vigil_sql.tsv" | cut -c1-160
