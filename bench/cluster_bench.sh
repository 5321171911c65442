#!/usr/bin/env bash
# Cluster ingest beside one vigild, in the same run (issue 17, schemas/cluster.md):
#   single:  one vigild (its own store), AGENTS `vigil send` at once;
#   cluster: 3 nats-server (JetStream, R3 file stream, one machine), 2 ingest nodes (the
#            agents split between them), 2 store nodes (shards 0-3 and 4-7).
# N events of the realistic mix (shared/bench/gen_events.py) cut into AGENTS parts, one
# agent certificate each (the shard is the agent's). Prints per setup: events/s until the
# last ack, mean ack latency (vigil_ack_latency_seconds), for the cluster the mean publish
# latency (vigil_cluster_publish_seconds) and the time until the store nodes had every
# event, and the CPU of every process per event (vigild, and the NATS servers).
# usage: bench/cluster_bench.sh [N=200000] [AGENTS=4]
# Needs a release build in $VG_BIN_DIR (default build/release) and nats-server. Binds
# 127.0.0.1 only; stops every process by PID.
set -euo pipefail
ALLOW_ROOT=()
if [[ $EUID -eq 0 ]]; then ALLOW_ROOT=(--allow-root); fi
cd "$(dirname "$0")/.."
N=${1:-200000}
AGENTS=${2:-4}
BENCH=${VG_BENCH_DIR:-../shared/bench}
BIN=${VG_BIN_DIR:-build/release}
SCRATCH=${BENCH_SCRATCH:-$(dirname "$(mktemp -u)")/vigil-bench}
mkdir -p "$SCRATCH"
DATA="$SCRATCH/events-$N.ndjson"
[[ -x $BIN/query/vigil ]] || { echo "build first: cmake -S . -B $BIN -DCMAKE_BUILD_TYPE=Release && cmake --build $BIN -j" >&2; exit 2; }
command -v nats-server >/dev/null || { echo "nats-server is needed (apt-get install nats-server)" >&2; exit 2; }
if [[ ! -s $DATA ]]; then
    echo "generating $N events into $DATA" >&2
    python3 "$BENCH/gen_events.py" -n "$N" -o "$DATA" --seed 42
fi
PARTS=()
for k in $(seq 0 $((AGENTS - 1))); do PARTS+=("$DATA.part$AGENTS-$k"); done
if [[ ! -s ${PARTS[0]} ]]; then
    split -n "l/$AGENTS" -d -a 1 "$DATA" "$DATA.tmp$AGENTS-"
    for k in $(seq 0 $((AGENTS - 1))); do mv "$DATA.tmp$AGENTS-$k" "${PARTS[$k]}"; done
fi
D=$(mktemp -d "$SCRATCH/cluster-XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
$BIN/query/vigil pki init "$D/pki" >/dev/null
for k in $(seq 0 $((AGENTS - 1))); do $BIN/query/vigil pki issue "$D/pki" "bench-agent-$k" >/dev/null; done

cpu_of() { awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1==m {print $2}'; }
# start NAME CONFIG: a vigild; sets $pid, $fwd (forward port or empty), $adm
start() {
    $BIN/collector/vigild -c "$2" --ready-fd 9 "${ALLOW_ROOT[@]}" 9>"$D/$1.ready" 2>"$D/$1.log" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 400); do grep -q ready "$D/$1.ready" 2>/dev/null && break; sleep 0.05; done
    grep -q ready "$D/$1.ready" || { echo "$1 did not start:" >&2; cat "$D/$1.log" >&2; exit 1; }
    fwd=$(sed -n 's/.*forward=127.0.0.1:\([0-9]*\).*/\1/p' "$D/$1.ready")
    adm=$(sed -n 's/.*admin=127.0.0.1:\([0-9]*\).*/\1/p' "$D/$1.ready")
}
# ship PORT... : agent k to PORTS[k % count]; waits for every ack; prints the seconds
ship() {
    local ports=("$@") senders=() t0 t1
    t0=$(date +%s.%N)
    for k in "${!PARTS[@]}"; do
        $BIN/query/vigil send --server "127.0.0.1:${ports[$((k % ${#ports[@]}))]}" --ca "$D/pki/ca.pem" \
            --cert "$D/pki/bench-agent-$k.pem" --key "$D/pki/bench-agent-$k-key.pem" \
            "${PARTS[$k]}" > "$D/send.$k.out" 2>&1 &
        senders+=($!)
    done
    for s in "${senders[@]}"; do wait "$s" || { echo "vigil send failed: $(cat "$D"/send.*.out)" >&2; exit 1; }; done
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}'
}
mean() { awk -v s="$1" -v c="$2" 'BEGIN{ if (c > 0) printf "%.1f", 1000*s/c; else print "-" }'; }
per_event() { awk -v c="$1" -v n="$N" 'BEGIN{printf "%.2f", c*1e6/n}'; }

# --- single vigild ---------------------------------------------------------------------
cat > "$D/single.yaml" <<YAML
store:  { path: $D/single-store, partition: 1h, compaction: off }
tls:    { ca: pki/ca.pem, cert: pki/server.pem, key: pki/server-key.pem }
listen: { forward: 127.0.0.1:0, syslog: null, https: null, admin: 127.0.0.1:0 }
log:    { level: warn }
YAML
start single "$D/single.yaml"
spid=$pid; sadm=$adm
secs=$(ship "$fwd")
acks=$(metric "$sadm" vigil_ack_latency_seconds_sum); ackc=$(metric "$sadm" vigil_ack_latency_seconds_count)
cpu=$(cpu_of "$spid")
echo "single vigild:  $N events in ${secs}s = $(awk -v n="$N" -v s="$secs" 'BEGIN{printf "%.0f", n/s}') ev/s; ack latency mean $(mean "$acks" "$ackc") ms; vigild $(per_event "$cpu") us CPU/event"
kill -TERM "$spid"; wait "$spid" || true

# --- cluster ---------------------------------------------------------------------------
P=(); for _ in $(seq 1 9); do P+=("$(free_port)"); done
NATS=()
for i in 0 1 2; do
    routes=""
    for j in 0 1 2; do [[ $j -ne $i ]] && routes+="${routes:+, }nats-route://127.0.0.1:${P[$((3 + j))]}"; done
    mkdir -p "$D/n$i"
    cat > "$D/n$i/nats.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:${P[$i]}
http: 127.0.0.1:${P[$((6 + i))]}
max_payload: 8MB
jetstream { store_dir: "$D/n$i/js" }
cluster { name: bench, listen: 127.0.0.1:${P[$((3 + i))]}, routes: [ $routes ] }
CONF
    nats-server -c "$D/n$i/nats.conf" > "$D/n$i/log" 2>&1 &
    NATS+=($!); PIDS+=($!)
done
for _ in $(seq 1 600); do
    ok=0
    for i in 0 1 2; do curl -s "http://127.0.0.1:${P[$((6 + i))]}/healthz" | grep -q '"ok"' && ok=$((ok + 1)); done
    [[ $ok -eq 3 ]] && break
    sleep 0.1
done
URLS="\"nats://127.0.0.1:${P[0]}\", \"nats://127.0.0.1:${P[1]}\", \"nats://127.0.0.1:${P[2]}\""
node() { # NAME ROLE LISTEN STORE_SHARDS
    cat > "$D/$1.yaml" <<YAML
store:  { path: $D/$1-store, partition: 1h }
tls:    { ca: pki/ca.pem, cert: pki/server.pem, key: pki/server-key.pem }
listen: { forward: $3, syslog: null, https: null, admin: 127.0.0.1:0 }
log:    { level: warn }
cluster: { nats: [ $URLS ], roles: [ $2 ], shards: 8, replicas: 3, node: $1${4:+, store_shards: \"$4\"} }
YAML
}
node ingest-a ingest 127.0.0.1:0; node ingest-b ingest 127.0.0.1:0
node store-1 store null 0-3; node store-2 store null 4-7
start ingest-a "$D/ingest-a.yaml"; apid=$pid; aadm=$adm; afwd=$fwd
start ingest-b "$D/ingest-b.yaml"; bpid=$pid; badm=$adm; bfwd=$fwd
start store-1 "$D/store-1.yaml"; s1pid=$pid; s1adm=$adm
start store-2 "$D/store-2.yaml"; s2pid=$pid; s2adm=$adm
t0=$(date +%s.%N)
secs=$(ship "$afwd" "$bfwd")
records() { curl -s "http://127.0.0.1:$1/metrics" | awk '$1 ~ /^vigil_cluster_store_records_total/ {s+=$2} END{print s+0}'; }
for _ in $(seq 1 6000); do
    [[ $(( $(records "$s1adm") + $(records "$s2adm") )) -ge $N ]] && break
    sleep 0.1
done
stored=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.3f", b-a}')
acks=0; ackc=0; pubs=0; pubc=0; msgs=0
for a in "$aadm" "$badm"; do
    acks=$(awk -v x="$acks" -v y="$(metric "$a" vigil_ack_latency_seconds_sum)" 'BEGIN{print x+y}')
    ackc=$(awk -v x="$ackc" -v y="$(metric "$a" vigil_ack_latency_seconds_count)" 'BEGIN{print x+y}')
    pubs=$(awk -v x="$pubs" -v y="$(metric "$a" vigil_cluster_publish_seconds_sum)" 'BEGIN{print x+y}')
    pubc=$(awk -v x="$pubc" -v y="$(metric "$a" vigil_cluster_publish_seconds_count)" 'BEGIN{print x+y}')
done
bytes=$(( $(metric "$aadm" vigil_cluster_published_bytes_total | cut -d. -f1) + $(metric "$badm" vigil_cluster_published_bytes_total | cut -d. -f1) ))
ci=$(awk -v a="$(cpu_of "$apid")" -v b="$(cpu_of "$bpid")" 'BEGIN{print a+b}')
cs=$(awk -v a="$(cpu_of "$s1pid")" -v b="$(cpu_of "$s2pid")" 'BEGIN{print a+b}')
cn=0; for p in "${NATS[@]}"; do cn=$(awk -v a="$cn" -v b="$(cpu_of "$p")" 'BEGIN{print a+b}'); done
echo "cluster (2 ingest, R3 JetStream on 3 nats-server, 2 store): $N events acked in ${secs}s = $(awk -v n="$N" -v s="$secs" 'BEGIN{printf "%.0f", n/s}') ev/s; all in the stores after ${stored}s; ack latency mean $(mean "$acks" "$ackc") ms; publish mean $(mean "$pubs" "$pubc") ms over $pubc messages ($(awk -v b="$bytes" -v c="$pubc" 'BEGIN{ if (c > 0) printf "%.0f", b/c/1024; else print 0 }') KiB each)"
echo "  CPU per event: ingest nodes $(per_event "$ci") us, store nodes $(per_event "$cs") us, NATS servers $(per_event "$cn") us; total $(per_event "$(awk -v a="$ci" -v b="$cs" -v c="$cn" 'BEGIN{print a+b+c}')") us"
