#!/usr/bin/env bash
# Forward ingest baseline: `vigil send` -> vigild over mutual TLS, N events of the
# realistic mix (shared/bench/gen_events.py), RUNS runs; prints each run's events/s, the
# median, vigild's CPU seconds and the store's size against the raw NDJSON.
# CONNS > 1: the file is cut into CONNS parts (whole lines) sent at once by CONNS
# `vigil send` processes, one connection each.
# usage: bench/ingest_forward.sh [N=1000000] [RUNS=3] [CONNS=1]
# Needs a release build in $VG_BIN_DIR (default build/release; scripts/demo.sh makes
# one). VG_STORE_EXTRA adds store keys (e.g. "block_max_age: 0s"). vigild's CPU is read
# as it stops (its final commit, which cuts the open blocks, included). Binds 127.0.0.1
# only; stops vigild by PID.
set -euo pipefail
# vigild refuses to keep root unless told: these runs are throwaway stores.
ALLOW_ROOT=()
if [[ $EUID -eq 0 ]]; then ALLOW_ROOT=(--allow-root); fi
cd "$(dirname "$0")/.."
N=${1:-1000000}
RUNS=${2:-3}
CONNS=${3:-1}
BENCH=${VG_BENCH_DIR:-../shared/bench}
BIN=${VG_BIN_DIR:-build/release}
SCRATCH=${BENCH_SCRATCH:-$(dirname "$(mktemp -u)")/vigil-bench}
mkdir -p "$SCRATCH"
DATA="$SCRATCH/events-$N.ndjson"
[[ -x $BIN/query/vigil ]] || { echo "build first: cmake -S . -B $BIN -DCMAKE_BUILD_TYPE=Release && cmake --build $BIN -j" >&2; exit 2; }
if [[ ! -s $DATA ]]; then
    echo "generating $N events into $DATA" >&2
    python3 "$BENCH/gen_events.py" -n "$N" -o "$DATA" --seed 42
fi
RAW=$(stat -c %s "$DATA")
PARTS=("$DATA")
if [[ $CONNS -gt 1 ]]; then
    PARTS=()
    for k in $(seq 0 $((CONNS - 1))); do PARTS+=("$DATA.part$CONNS-$k"); done
    if [[ ! -s ${PARTS[0]} ]]; then
        split -n "l/$CONNS" -d -a 1 "$DATA" "$DATA.tmp$CONNS-"
        for k in $(seq 0 $((CONNS - 1))); do mv "$DATA.tmp$CONNS-$k" "${PARTS[$k]}"; done
    fi
fi
rates=()
cpus=()
for run in $(seq 1 "$RUNS"); do
    D=$(mktemp -d "$SCRATCH/run-XXXXXX")
    $BIN/query/vigil pki init "$D/pki" >/dev/null
    cat > "$D/vigil.yaml" <<YAML
store:  { path: $D/store, partition: 1h${VG_STORE_EXTRA:+, $VG_STORE_EXTRA} }
tls:    { ca: pki/ca.pem, cert: pki/server.pem, key: pki/server-key.pem }
listen: { forward: 127.0.0.1:0, syslog: null, https: null, admin: 127.0.0.1:0 }
log:    { level: warn }
YAML
    $BIN/collector/vigild -c "$D/vigil.yaml" --ready-fd 9 "${ALLOW_ROOT[@]}" 9>"$D/ready" 2>"$D/vigild.log" &
    pid=$!
    for _ in $(seq 1 200); do grep -q ready "$D/ready" 2>/dev/null && break; sleep 0.05; done
    port=$(sed -n 's/.*forward=127.0.0.1:\([0-9]*\).*/\1/p' "$D/ready")
    t0=$(date +%s.%N)
    senders=()
    for k in "${!PARTS[@]}"; do
        $BIN/query/vigil send --server 127.0.0.1:$port --ca "$D/pki/ca.pem" \
            --cert "$D/pki/agent-node-1.pem" --key "$D/pki/agent-node-1-key.pem" \
            "${PARTS[$k]}" > "$D/send.$k.out" &
        senders+=($!)
    done
    for s in "${senders[@]}"; do wait "$s"; done
    t1=$(date +%s.%N)
    if [[ $CONNS -gt 1 ]]; then
        out="$N events acknowledged on $CONNS connections"
    else
        out=$(cat "$D/send.0.out")
    fi
    # Its CPU as it stops (its final commit, which cuts the open blocks, included): read
    # until it is gone, the last reading 10 ms or less before its exit.
    kill -TERM $pid
    cpu=0
    while c=$(awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' /proc/$pid/stat 2>/dev/null) &&
        [[ -n $c ]]; do
        cpu=$c
        sleep 0.01
    done
    wait $pid
    rate=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')
    size=$(du -sb "$D/store" | cut -f1)
    echo "run $run: $out | wall rate $rate ev/s | vigild cpu ${cpu}s ($(awk -v c="$cpu" -v n="$N" 'BEGIN{printf "%.2f", c*1e6/n}') us/event) | store $size bytes ($(awk -v r="$RAW" -v s="$size" 'BEGIN{printf "%.2f", r/s}')x smaller than NDJSON)"
    rates+=("$rate")
    cpus+=("$(awk -v c="$cpu" -v n="$N" 'BEGIN{printf "%.2f", c*1e6/n}')")
    rm -rf "$D"
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if(NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
median=$(med "${rates[@]}")
cpu_median=$(med "${cpus[@]}")
echo "median: $median events/s, $cpu_median us of vigild CPU per event, over $RUNS runs of $N events ($CONNS connection(s))"
