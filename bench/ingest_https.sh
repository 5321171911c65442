#!/usr/bin/env bash
# HTTPS ingest: N events of the realistic mix (shared/bench/gen_events.py) POSTed to
# vigild's /v1/events over mutual TLS as NDJSON bodies of BATCH events each, on CONNS
# keep-alive connections (a small Python client: one thread per connection, each
# waiting for its 200 before sending its next body, so every 200 is an acknowledgement of
# durable events). RUNS runs; prints each run's events/s, the median, vigild's CPU
# seconds and the store's size against the raw NDJSON.
# usage: bench/ingest_https.sh [N=500000] [RUNS=3] [BATCH=1000] [CONNS=4]
# Needs a release build in build/release (scripts/demo.sh makes one). Binds 127.0.0.1
# only; stops vigild by PID.
set -euo pipefail
# vigild refuses to keep root unless told: these runs are throwaway stores.
ALLOW_ROOT=()
if [[ $EUID -eq 0 ]]; then ALLOW_ROOT=(--allow-root); fi
cd "$(dirname "$0")/.."
N=${1:-500000}
RUNS=${2:-3}
BATCH=${3:-1000}
CONNS=${4:-4}
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
CLIENT="$SCRATCH/https_client.py"
cat > "$CLIENT" <<'PY'
"""POSTs an NDJSON file to vigild's /v1/events in batches over keep-alive mTLS
connections; prints the wall-clock seconds from the first byte sent to the last 200."""
import http.client, json, ssl, sys, threading, time

data, port, ca, cert, key, batch, conns = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6], \
    int(sys.argv[6]), int(sys.argv[7])
with open(data, "rb") as f:
    lines = f.read().splitlines(keepends=True)
bodies = [b"".join(lines[i:i + batch]) for i in range(0, len(lines), batch)]
counts = [len(lines[i:i + batch]) for i in range(0, len(lines), batch)]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
errors, accepted, lock = [], [0], threading.Lock()

def worker(k):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=120)
    n = 0
    for i in range(k, len(bodies), conns):
        c.request("POST", "/v1/events", bodies[i], {"Content-Type": "application/x-ndjson"})
        r = c.getresponse()
        reply = r.read()
        if r.status != 200 or json.loads(reply) != {"accepted": counts[i]}:
            errors.append((r.status, reply[:200]))
            return
        n += counts[i]
    c.close()
    with lock:
        accepted[0] += n

threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
t0 = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
secs = time.monotonic() - t0
if errors or accepted[0] != len(lines):
    sys.exit("failed: %r, %d of %d accepted" % (errors[:3], accepted[0], len(lines)))
print("%.3f %d %d" % (secs, accepted[0], len(bodies)))
PY
rates=()
cpus=()
for run in $(seq 1 "$RUNS"); do
    D=$(mktemp -d "$SCRATCH/run-XXXXXX")
    $BIN/query/vigil pki init "$D/pki" >/dev/null
    cat > "$D/vigil.yaml" <<YAML
store:  { path: $D/store, partition: 1h }
tls:    { ca: pki/ca.pem, cert: pki/server.pem, key: pki/server-key.pem }
listen: { forward: null, syslog: null, https: 127.0.0.1:0, admin: 127.0.0.1:0 }
log:    { level: warn }
YAML
    $BIN/collector/vigild -c "$D/vigil.yaml" --ready-fd 9 "${ALLOW_ROOT[@]}" 9>"$D/ready" 2>"$D/vigild.log" &
    pid=$!
    for _ in $(seq 1 200); do grep -q ready "$D/ready" 2>/dev/null && break; sleep 0.05; done
    port=$(sed -n 's/.*https=127.0.0.1:\([0-9]*\).*/\1/p' "$D/ready")
    out=$(python3 "$CLIENT" "$DATA" "$port" "$D/pki/ca.pem" "$D/pki/agent-node-1.pem" \
        "$D/pki/agent-node-1-key.pem" "$BATCH" "$CONNS")
    secs=${out%% *}
    cpu=$(awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' /proc/$pid/stat)
    kill -TERM $pid; wait $pid
    rate=$(awk -v n="$N" -v s="$secs" 'BEGIN{printf "%.0f", n/s}')
    size=$(du -sb "$D/store" | cut -f1)
    echo "run $run: $N events in $(echo "$out" | cut -d' ' -f3) POSTs of $BATCH on $CONNS connections, ${secs}s | $rate ev/s | vigild cpu ${cpu}s ($(awk -v c="$cpu" -v n="$N" 'BEGIN{printf "%.2f", c*1e6/n}') us/event) | store $size bytes ($(awk -v r="$RAW" -v s="$size" 'BEGIN{printf "%.2f", r/s}')x smaller than NDJSON)"
    rates+=("$rate")
    cpus+=("$(awk -v c="$cpu" -v n="$N" 'BEGIN{printf "%.2f", c*1e6/n}')")
    rm -rf "$D"
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if(NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
median=$(med "${rates[@]}")
cpu_median=$(med "${cpus[@]}")
echo "median: $median events/s, $cpu_median us of vigild CPU per event, over $RUNS runs of $N events (HTTPS, NDJSON bodies of $BATCH, $CONNS keep-alive connections)"
