#!/usr/bin/env bash
# Query and size benchmark: vigil beside ClickHouse, SQLite and lz4+grep on the same
# events, in one run (DESIGN.md "Figures to reach": query, storage).
#
#   bench/query_bench.sh [N=5000000] [RUNS=3]
#
# 1. generates N events with ../shared/bench/gen_events.py (seed 42; events.ndjson and
#    flat.ndjson in the peers' scratch dir, reused when already there for this N);
# 2. ingests them into vigild over mutual TLS with `vigil send` (Forward), timed, then
#    measures the store's bytes: "hot" as ingested (LZ4 blocks as the commits cut them),
#    then seals every partition and compacts the sealed segments (`vigil compact`: zstd,
#    segment.md 12; VG_COMPACT_CODEC=lz4hc for LZ4HC), "sealed" being the compacted size;
#    VG_LOADER=1 loads with bench/store_load.c straight into the store instead (no
#    network path: for a quick run, or when the send path is the bottleneck);
# 3. runs the peers' scripts from ../shared/bench (ClickHouse 18, SQLite, lz4+grep, and
#    modern_bench.mjs: ClickHouse 26 as chDB and DuckDB 1.5, in process, from npm; their
#    modules from VG_MB_MODULES, else installed once into the scratch dir), unless
#    SKIP_PEERS=1 (then it reuses their last results, if any); SKIP_MODERN=1 leaves the
#    modern ones out;
# 4. runs the five forensic queries (queries.env) with `vigil search` / `vigil stats`, and
#    (d) as `vigil timeline`,
#    over the compacted store and over a copy of the store as ingested (LZ4 blocks):
#    one first run, then RUNS timed runs, median;
# 5. prints a table with every system's medians, the ratios, and bytes on disk.
#
# VG_EVENTS=FILE ingests that NDJSON file instead of the generated one (N is then its
# line count), and VG_INGEST_ONLY=1 stops after the ingest, seal, compaction and sizes
# (no peers, no queries): for the ingest figure on a larger set than the queries'.
#
# Needs a release build (cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release); apt
# packages clickhouse-server clickhouse-client sqlite3 lz4 zstd for the peers. Binds
# 127.0.0.1 only; stops what it starts by PID. Results: $RESULTS/vigil_*.tsv.
set -euo pipefail
# vigild refuses to keep root unless told: these runs are throwaway stores.
ALLOW_ROOT=()
if [[ $EUID -eq 0 ]]; then ALLOW_ROOT=(--allow-root); fi
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-5000000}
RUNS=${2:-3}
PEERS=${VG_BENCH_DIR:-$ROOT/../shared/bench}
BIN=${VG_BUILD:-build/release}
source "$PEERS/common.sh" # SCRATCH, DATA, RESULTS, log, median, timed, queries.env
for b in "$BIN/query/vigil" "$BIN/collector/vigild"; do
    [[ -x $b ]] || { echo "build first: cmake -S . -B $BIN -DCMAKE_BUILD_TYPE=Release && cmake --build $BIN -j --target vigil vigild" >&2; exit 2; }
done
VIGIL=$ROOT/$BIN/query/vigil
VIGILD=$ROOT/$BIN/collector/vigild

# ---- 1. data ----
if [[ -n ${VG_EVENTS:-} ]]; then
    EVENTS=$VG_EVENTS
    N=$(wc -l < "$EVENTS")
elif [[ ( ${SKIP_PEERS:-0} != 1 && ! -s $DATA/flat.ndjson ) || ! -s $DATA/events.ndjson ||
        "$(cat "$DATA/N" 2>/dev/null)" != "$N" ]]; then
    # The peers' rows (flat.ndjson) only when the peers run: a vigil-only run (the
    # scaling bench) needs half the disk.
    FLAT=()
    [[ ${SKIP_PEERS:-0} != 1 ]] && FLAT=(--flat-out "$DATA/flat.ndjson.tmp")
    log "generating $N events (seed 42)"
    rm -f "$DATA/events.ndjson" "$DATA/flat.ndjson" "$DATA/N"
    python3 "$PEERS/gen_events.py" -n "$N" --seed 42 -o "$DATA/events.ndjson.tmp" "${FLAT[@]}"
    mv "$DATA/events.ndjson.tmp" "$DATA/events.ndjson"
    [[ ${#FLAT[@]} -gt 0 ]] && mv "$DATA/flat.ndjson.tmp" "$DATA/flat.ndjson"
    echo "$N" > "$DATA/N"
fi
EVENTS=${EVENTS:-$DATA/events.ndjson}
RAW=$(stat -L -c %s "$EVENTS")
log "data: $N events, $RAW bytes of NDJSON"

# ---- 2. ingest into vigild ----
W="$SCRATCH/vigil"
rm -rf "$W"
mkdir -p "$W"
STORE="$W/store"
PID=""
cleanup() { if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi; }
trap cleanup EXIT INT TERM
store_bytes() { du -sb --apparent-size "$STORE/segments" | cut -f1; }
if [[ ${VG_LOADER:-0} == 1 ]]; then
    B=$ROOT/$BIN
    cc -O2 -D_GNU_SOURCE -I"$ROOT" -o "$W/store_load" bench/store_load.c "$B/store/libvg_store.a" \
        "$B/schemas/libvg_schemas.a" "$B/common/libvg_common.a" \
        $(pkg-config --libs liblz4 libzstd sqlite3 yajl msgpack libuv openssl yaml-0.1 zlib) -lm -lpthread
    INGEST_HOW="store_load (straight into the store, 2000-event commits)"
    t0=$(now)
    "$W/store_load" --store "$STORE" --block-bytes 1048576 --batch 2000 "$EVENTS" | tee "$W/ingest.out"
    t1=$(now)
else
    INGEST_HOW="vigil send -> vigild (Forward over mTLS, fsync on)"
    "$VIGIL" pki init "$W/pki" >/dev/null
    # The events are of 2024: every partition has ended, so vigild seals segments as it
    # goes (late events) and would compact them meanwhile. Off here, so that "hot" is the
    # store as written; the sealed figure comes from vigil compact below (the same code).
    cat > "$W/vigil.yaml" <<YAML
store:  { path: $STORE, partition: 1h, block_bytes: 1MiB, retention: { max_age: 36500d },
          compaction: off }
tls:    { ca: pki/ca.pem, cert: pki/server.pem, key: pki/server-key.pem }
listen: { forward: 127.0.0.1:0, syslog: null, https: null, admin: 127.0.0.1:0 }
log:    { level: warn }
YAML
    "$VIGILD" -c "$W/vigil.yaml" --ready-fd 9 "${ALLOW_ROOT[@]}" 9>"$W/ready" 2>"$W/vigild.log" &
    PID=$!
    for _ in $(seq 1 400); do grep -q ready "$W/ready" 2>/dev/null && break; sleep 0.05; done
    port=$(sed -n 's/.*forward=127.0.0.1:\([0-9]*\).*/\1/p' "$W/ready")
    t0=$(now)
    "$VIGIL" send --server "127.0.0.1:$port" --ca "$W/pki/ca.pem" --cert "$W/pki/agent-node-1.pem" \
        --key "$W/pki/agent-node-1-key.pem" "$EVENTS" | tee "$W/ingest.out"
    t1=$(now)
    # vigild's peak RSS and CPU over the whole ingest (before it stops).
    RSS_KB=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
    read -r UT ST < <(awk '{print $14, $15}' "/proc/$PID/stat")
    CPU_S=$(awk -v u="$UT" -v s="$ST" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", (u+s)/hz}')
    VIGILD_USAGE="vigild: peak RSS $((RSS_KB / 1024)) MiB, CPU $CPU_S s ($(awk -v c="$CPU_S" -v n="$N" 'BEGIN{printf "%.1f", c*1e6/n}') us/event)"
fi
INGEST_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
INGEST_RATE=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')
HOT=$(store_bytes)
log "ingest: $N events in $INGEST_S s ($INGEST_RATE events/s) via $INGEST_HOW; store $HOT bytes; ${VIGILD_USAGE:-}"
if [[ -n $PID ]]; then
    kill -TERM "$PID"
    wait "$PID"
    PID=""
fi
# Seal every partition (a writer start seals what ended; vigild seals as partitions end).
if [[ ${VG_LOADER:-0} == 1 ]]; then
    "$W/store_load" --store "$STORE" --seal /dev/null >/dev/null
else
    "$VIGILD" -c "$W/vigil.yaml" --ready-fd 9 "${ALLOW_ROOT[@]}" 9>"$W/ready2" 2>>"$W/vigild.log" &
    PID=$!
    for _ in $(seq 1 400); do grep -q ready "$W/ready2" 2>/dev/null && break; sleep 0.05; done
    for _ in $(seq 1 600); do
        open=$(sqlite3 "$STORE/catalog.db" "SELECT count(*) FROM segments WHERE state = 'open'")
        [[ $open == 0 ]] && break
        sleep 1
    done
    kill -TERM "$PID"
    wait "$PID"
    PID=""
fi
SEALED_LZ4=$(store_bytes)
rm -rf "$W/store-lz4"
cp -a "$STORE" "$W/store-lz4"
log "compacting (vigil compact --codec ${VG_COMPACT_CODEC:-zstd})"
"$VIGIL" compact --store "$STORE" --codec "${VG_COMPACT_CODEC:-zstd}" | tee "$W/compact.out"
SEALED=$(store_bytes)
RECORDS=$(sqlite3 "$STORE/catalog.db" "SELECT sum(count) FROM segments")
BLOCKS=$(sqlite3 "$STORE/catalog.db" "SELECT sum(blocks) FROM segments")
log "store: $RECORDS records in $BLOCKS blocks; hot $HOT bytes, sealed $SEALED_LZ4, compacted $SEALED bytes"
"$VIGIL" verify --store "$STORE" --quiet > "$W/verify.out" 2>&1 || { cat "$W/verify.out"; echo "vigil verify failed" >&2; exit 1; }
ratio_raw() { awk -v r="$RAW" -v b="$1" 'BEGIN{ if (b > 0) printf "%.2fx", r/b; else print "-" }'; }
if [[ ${VG_INGEST_ONLY:-0} == 1 ]]; then
    {
        echo "== ingest, $N events ($RAW bytes of NDJSON) =="
        echo "ingest: $INGEST_S s, $INGEST_RATE events/s via $INGEST_HOW"
        echo "${VIGILD_USAGE:-}"
        echo "hot $HOT bytes ($(ratio_raw "$HOT")), sealed $SEALED_LZ4 ($(ratio_raw "$SEALED_LZ4")), compacted $SEALED ($(ratio_raw "$SEALED"))"
        echo "compaction: $(cat "$W/compact.out")"
        echo "verify: $(tail -1 "$W/verify.out")"
    } | tee "$RESULTS/ingest_bench.txt"
    exit 0
fi

# ---- 3. peers ----
if [[ ${SKIP_PEERS:-0} != 1 ]]; then
    log "peers: ClickHouse"
    "$PEERS/clickhouse_bench.sh" "$RUNS" > "$W/clickhouse.out" 2>&1 || log "clickhouse_bench.sh failed (see $W/clickhouse.out)"
    log "peers: SQLite"
    "$PEERS/sqlite_bench.sh" "$RUNS" > "$W/sqlite.out" 2>&1 || log "sqlite_bench.sh failed (see $W/sqlite.out)"
    log "peers: lz4 + grep"
    "$PEERS/grep_bench.sh" "$RUNS" > "$W/grep.out" 2>&1 || log "grep_bench.sh failed (see $W/grep.out)"
fi
# The modern peers (ClickHouse 26 as chDB and DuckDB, in process, from npm): the bar.
# Their modules: VG_MB_MODULES, or $PEERS/modern/node_modules, or installed once into
# the scratch dir (npm, pinned versions).
if [[ ${SKIP_PEERS:-0} != 1 && ${SKIP_MODERN:-0} != 1 ]]; then
    MB=${VG_MB_MODULES:-}
    if [[ -z $MB && -d $PEERS/modern/node_modules ]]; then MB=$PEERS/modern; fi
    if [[ -z $MB ]]; then
        MB=$SCRATCH/mb_modules
        if [[ ! -d $MB/node_modules/chdb ]]; then
            log "peers: installing chdb and @duckdb/node-api into $MB"
            npm install --silent --prefix "$MB" chdb@3.4.0 @duckdb/node-api@1.5.6-r.1 > "$W/npm.out" 2>&1 ||
                log "npm install failed (see $W/npm.out)"
        fi
    fi
    log "peers: ClickHouse 26 (chDB) and DuckDB"
    MB_MODULES=$MB node "$PEERS/modern_bench.mjs" "$RUNS" > "$W/modern.out" 2>&1 ||
        log "modern_bench.mjs failed (see $W/modern.out)"
fi

# ---- 4. vigil's queries ----
iso() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }
declare -A Q
Q[a_pod_1h]="search --format ndjson pod=$Q_POD --since $(iso "$Q_T0") --until $(iso "$Q_T1")"
Q[b_authfail_top20]="stats --format csv outcome=failure --by src_ip --top 20"
Q[c_rare_cmdline]="search --format ndjson cmdline~$Q_RARE"
Q[c2_rare_rawjson]="search --format ndjson $Q_RARE"
Q[d_user_timeline]="search --format ndjson user=$Q_USER"
# (d) as an analyst asks it: the user's timeline, in event-time order (the peers' (d)
# is ORDER BY ts too).
Q[t_user_timeline]="timeline --format ndjson user=$Q_USER"
QUERIES="a_pod_1h b_authfail_top20 c_rare_cmdline c2_rare_rawjson d_user_timeline t_user_timeline"
run_queries() { # run_queries STORE TSV TAG
    printf 'query\trows\tfirst_s\tmedian_s\truns_s\tcommand\tpeak_rss_kb\n' > "$2"
    for q in $QUERIES; do
        walls=()
        rss=()
        for r in $(seq 0 "$RUNS"); do
            # shellcheck disable=SC2086
            read -r wall u s m < <(timed "$W/q.out" "$VIGIL" ${Q[$q]} --store "$1")
            if [[ $r == 0 ]]; then first=$wall; cp "$W/q.out" "$W/$3-$q.out"; continue; fi
            walls+=("$wall")
            rss+=("$m")
        done
        rows=$(wc -l < "$W/$3-$q.out")
        [[ $q == b_* ]] && rows=$((rows - 1)) # the CSV header
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$q" "$rows" "$first" "$(median "${walls[@]}")" "${walls[*]}" \
            "vigil ${Q[$q]}" "$(median "${rss[@]}")" >> "$2"
        log "$3 $q: $(tail -1 "$2")"
        # shellcheck disable=SC2086
        "$VIGIL" ${Q[$q]} --store "$1" --explain 2>"$W/$3-$q.explain" >/dev/null || true
    done
}
run_queries "$STORE" "$RESULTS/vigil_queries.tsv" compacted
run_queries "$W/store-lz4" "$RESULTS/vigil_lz4_queries.tsv" lz4
cp "$W/compacted-b_authfail_top20.out" "$W/b_authfail_top20.out"
tail -n +2 "$W/b_authfail_top20.out" | tr -d '"\r' | awk -F, '{print $1"\t"$2}' > "$RESULTS/top20_vigil.tsv"

# ---- 5. the table ----
peer() { # peer FILE QUERY -> median seconds ("-" when absent)
    [[ -s $1 ]] && awk -F'\t' -v q="$2" '$1 == q {print $4; f=1} END {if (!f) print "-"}' "$1" || echo "-"
}
peer_rows() {
    [[ -s $1 ]] && awk -F'\t' -v q="$2" '$1 == q {print $2; f=1} END {if (!f) print "-"}' "$1" || echo "-"
}
ratio() { awk -v p="$1" -v v="$2" 'BEGIN{ if (p == "-" || v == "-" || v == 0) print "-"; else printf "%.1fx", p/v }'; }
{
    echo
    echo "== queries, $N events, median of $RUNS (seconds; ratio = peer time / vigil time) =="
    echo "vigil: over the compacted store; vigil-lz4: over the store as ingested (LZ4 blocks)"
    printf '%-18s %9s %9s %7s | %9s %7s %7s | %9s %7s %7s | %9s %7s\n' query vigil vigil-lz4 rows clickhouse rows ratio sqlite rows ratio lz4+grep ratio
    for q in $QUERIES; do
        v=$(peer "$RESULTS/vigil_queries.tsv" "$q")
        vl=$(peer "$RESULTS/vigil_lz4_queries.tsv" "$q")
        vr=$(peer_rows "$RESULTS/vigil_queries.tsv" "$q")
        c=$(peer "$RESULTS/clickhouse_queries.tsv" "$q")
        cr=$(peer_rows "$RESULTS/clickhouse_queries.tsv" "$q")
        s=$(peer "$RESULTS/sqlite_queries.tsv" "$q")
        sr=$(peer_rows "$RESULTS/sqlite_queries.tsv" "$q")
        gq=$q
        [[ $q == c2_rare_rawjson ]] && gq=c_rare_anywhere
        g=$(peer "$RESULTS/grep_queries.tsv" "$gq")
        printf '%-18s %9s %9s %7s | %9s %7s %7s | %9s %7s %7s | %9s %7s\n' "$q" "$v" "$vl" "$vr" "$c" "$cr" "$(ratio "$c" "$v")" \
            "$s" "$sr" "$(ratio "$s" "$v")" "$g" "$(ratio "$g" "$v")"
    done
    echo
    echo "== the modern peers, same events, median of $RUNS (seconds; ratio = peer time / vigil time over the compacted store) =="
    echo "t_user_timeline is vigil timeline; the peers' row for it is their (d), which is ORDER BY ts"
    printf '%-18s %9s %9s %9s | %12s %7s %7s | %12s %7s %7s\n' query vigil vigil-lz4 rss-MiB ch26-chdb rows ratio duckdb rows ratio
    mpeer() { # mpeer FILE QUERY COLUMN
        [[ -s $1 ]] && awk -F'\t' -v q="$2" -v c="$3" '$2 == q {print $c; f=1} END {if (!f) print "-"}' "$1" || echo "-"
    }
    for q in $QUERIES; do
        pq=$q
        [[ $q == t_user_timeline ]] && pq=d_user_timeline
        v=$(peer "$RESULTS/vigil_queries.tsv" "$q")
        vl=$(peer "$RESULTS/vigil_lz4_queries.tsv" "$q")
        mem=$(awk -F'\t' -v q="$q" '$1 == q && $7 != "" {printf "%.0f", $7 / 1024; f=1} END {if (!f) print "-"}' "$RESULTS/vigil_queries.tsv")
        ch=$(mpeer "$RESULTS/modern_chdb_queries.tsv" "$pq" 5)
        chr=$(mpeer "$RESULTS/modern_chdb_queries.tsv" "$pq" 3)
        dk=$(mpeer "$RESULTS/modern_duckdb_queries.tsv" "$pq" 5)
        dkr=$(mpeer "$RESULTS/modern_duckdb_queries.tsv" "$pq" 3)
        printf '%-18s %9s %9s %9s | %12s %7s %7s | %12s %7s %7s\n' "$q" "$v" "$vl" "$mem" "$ch" "$chr" "$(ratio "$ch" "$v")" \
            "$dk" "$dkr" "$(ratio "$dk" "$v")"
    done
    for e in chdb duckdb; do
        [[ -s $RESULTS/modern_${e}_size.tsv ]] && tail -1 "$RESULTS/modern_${e}_size.tsv" |
            awk -F'\t' '{printf "%s: %s rows, load %s s, %s bytes on disk (%sx smaller than the NDJSON)\n", $1, $2, $3, $5, $7}'
    done
    agree() { # agree FILE NAME: does the peer's top 20 of (b) match vigil's?
        [[ -s $1 ]] || return 0
        if diff -q <(cut -f1,2 "$RESULTS/top20_vigil.tsv") <(cut -f1,2 "$1") >/dev/null; then
            echo "top 20 failing IPs: vigil and $2 agree"
        else
            echo "top 20 failing IPs: vigil and $2 differ:"
            diff <(cut -f1,2 "$RESULTS/top20_vigil.tsv") <(cut -f1,2 "$1") | head -10 || true
        fi
    }
    agree "$RESULTS/top20_chdb.tsv" "ClickHouse 26"
    agree "$RESULTS/top20_clickhouse.tsv" "ClickHouse 18"
    echo
    echo "== bytes on disk, $N events (ratio = raw NDJSON / bytes) =="
    printf '%-40s %14s %8s\n' store bytes ratio
    row() { printf '%-40s %14s %8s\n' "$1" "$2" "$(awk -v r="$RAW" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2fx", r/b; else print "-" }')"; }
    row "raw NDJSON" "$RAW"
    row "vigil, hot (as ingested, LZ4)" "$HOT"
    row "vigil, sealed (LZ4, as ingested)" "$SEALED_LZ4"
    row "vigil, sealed and compacted" "$SEALED"
    if [[ -s $RESULTS/clickhouse_size.tsv ]]; then
        row "ClickHouse, after insert" "$(awk -F'\t' '$1 == "after_insert" {print $4}' "$RESULTS/clickhouse_size.tsv")"
        row "ClickHouse, after OPTIMIZE FINAL" "$(awk -F'\t' '$1 == "after_optimize_final" {print $4}' "$RESULTS/clickhouse_size.tsv")"
    fi
    if [[ -s $RESULTS/sqlite_load.tsv ]]; then
        row "SQLite, with indexes" "$(tail -1 "$RESULTS/sqlite_load.tsv" | cut -f8)"
    fi
    if [[ -s $RESULTS/grep_compress.tsv ]]; then
        while IFS=$'\t' read -r step _ _ bytes _ _; do
            [[ $step == step ]] || row "$step" "$bytes"
        done < "$RESULTS/grep_compress.tsv"
    fi
    echo
    echo "ingest: $N events in $INGEST_S s ($INGEST_RATE events/s) via $INGEST_HOW"
    echo "${VIGILD_USAGE:-}"
    echo "compaction: $(cat "$W/compact.out")"
    echo "explain of each vigil query: $W/*.explain"
} | tee "$RESULTS/query_bench.txt"
