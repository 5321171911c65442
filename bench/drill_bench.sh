#!/usr/bin/env bash
# Fire drills (issue 16): time to detect and time to page over N runs of the
# multi-stage scenario (etc/drills/multi_stage.yaml: six alerts, each paged).
#
# vigild (release, default store.commit_interval, the default rule pack, one webhook
# forwarder `oncall`) and a webhook receiver (python3 http.server answering 200) on
# loopback. `vigil drill run --format json` N times, one after the other; each run's six
# expectations give a time to detect (the step's first event stored -> the alert record
# stored, vigild's received stamps) and a time to page (-> the receiver's 200, the outbox
# entry's done time). Prints median, p90, p99 and max of both over every expectation of
# every run, and how many runs passed.
# usage: bench/drill_bench.sh [N=100]
# Needs a release build in $VG_BUILD (default build/release). Binds 127.0.0.1 only; stops
# what it started by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
BIN=${VG_BUILD:-build/release}
SCRATCH=${BENCH_SCRATCH:-$(dirname "$(mktemp -u)")/vigil-bench}
mkdir -p "$SCRATCH"
[[ -x $BIN/collector/vigild ]] || { echo "build first: cmake -S . -B $BIN -DCMAKE_BUILD_TYPE=Release && cmake --build $BIN -j" >&2; exit 2; }
WORK=$(mktemp -d "$SCRATCH/drill-XXXXXX")
PID=""
RPID=""
stop() {
    for p in $PID $RPID; do
        if kill -0 "$p" 2>/dev/null; then kill -TERM "$p"; wait "$p" 2>/dev/null || true; fi
    done
    PID=""
    RPID=""
}
trap 'stop; rm -rf "$WORK"' EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RPORT=$(free_port)
python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$RPORT" &
RPID=$!

D=$WORK
$BIN/query/vigil pki init "$D/pki" >/dev/null
cat > "$D/vigil.yaml" <<YAML
store:  { path: $D/store, partition: 1h, compaction: off }
tls:    { ca: pki/ca.pem, cert: pki/server.pem, key: pki/server-key.pem }
listen: { forward: 127.0.0.1:0, syslog: null, https: null, admin: 127.0.0.1:0 }
log:    { level: warn }
rules:  { paths: [ $PWD/etc/rules ] }
forwarders:
  - { name: oncall, type: webhook, url: 'http://127.0.0.1:$RPORT/page' }
YAML
ALLOW=""
[[ $(id -u) == 0 ]] && ALLOW=--allow-root
"$BIN/collector/vigild" -c "$D/vigil.yaml" --ready-fd 9 $ALLOW 9>"$D/ready" 2>"$D/vigild.log" &
PID=$!
for _ in $(seq 1 200); do grep -q ready "$D/ready" 2>/dev/null && break; sleep 0.05; done
PORT=$(sed -n 's/.*forward=127.0.0.1:\([0-9]*\).*/\1/p' "$D/ready")
[[ -n $PORT ]] || { echo "vigild did not start:" >&2; cat "$D/vigild.log" >&2; exit 1; }

echo "== $N runs of etc/drills/multi_stage.yaml (6 alerts each, paged to a webhook)"
T0=$(date +%s.%N)
for i in $(seq 1 "$N"); do
    "$BIN/query/vigil" drill run etc/drills/multi_stage.yaml --server "127.0.0.1:$PORT" \
        --pki "$D/pki" --store "$D/store" --format json > "$D/run-$i.json" || true
done
T1=$(date +%s.%N)
python3 - "$D" "$N" "$T0" "$T1" <<'PY'
import json, sys
d, n, t0, t1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
det, page, passed = [], [], 0
for i in range(1, n + 1):
    r = json.load(open("%s/run-%d.json" % (d, i)))
    passed += r["passed"]
    for s in r["steps"]:
        for x in s["expectations"]:
            if x["detected"]:
                det.append(x["detect_seconds"] * 1000)
            for p in x["pages"]:
                if p["paged"]:
                    page.append(p["page_seconds"] * 1000)
def q(v, f):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(f * (len(v) - 1))))]
print("runs passed: %d of %d (%.1f s per run, shipping and watching included)"
      % (passed, n, (t1 - t0) / n))
for name, v in (("time to detect", det), ("time to page", page)):
    print("%-15s n=%-4d median %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  max %7.2f ms"
          % (name, len(v), q(v, .5), q(v, .9), q(v, .99), max(v)))
PY
stop
if grep -q " error: " "$D/vigild.log"; then
    echo "vigild logged errors:" >&2; grep " error: " "$D/vigild.log" | head >&2; exit 1
fi
