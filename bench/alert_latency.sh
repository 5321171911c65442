#!/usr/bin/env bash
# Alerts to a pager: (A) latency from an event received by vigild to its alert accepted
# by the real Alertmanager, and (B) ingest with forwarding on versus off, in one run.
#
# (A) vigild (release, default store.commit_interval, the default rule pack, one
#     alertmanager forwarder) and prometheus-alertmanager on loopback. A Forward client
#     over mutual TLS (tests/integration/forward_client.py) sends N corpus-shaped Falco
#     "shell in a container" events, one at a time, each in its own pod; the clock starts
#     just before the event is written to the socket and stops when GET /api/v2/alerts
#     shows the alert for that pod (polled every 2 ms: the figure includes up to 2 ms of
#     polling). Prints median, p90, p99 and max, and vigild's own histogram
#     (vigil_forwarder_delivery_seconds: alert recorded -> Alertmanager's 200).
# (B) `vigil send` of M events of the realistic mix (bench/gen_events.py, seed 42,
#     re-dated to now) into vigild with the rule pack, runs interleaved off/on: "on" adds
#     the alertmanager forwarder, so every alert the pack raises (the container shell
#     rule fires on ~18% of this mix) also goes through the outbox to Alertmanager.
#     Done when every event and alert is stored; events/s and vigild CPU per event,
#     medians; and how many alerts Alertmanager took in the "on" runs.
# usage: bench/alert_latency.sh [N=1000] [M=200000] [RUNS=3]   (M=0: latency only)
# Needs a release build in $VG_BUILD (default build/release) and prometheus-alertmanager.
# Binds 127.0.0.1 only; stops what it started by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
M=${2:-200000}
RUNS=${3:-3}
BIN=${VG_BUILD:-build/release}
AM_BIN=$(command -v prometheus-alertmanager || true)
[[ -n $AM_BIN ]] || [[ ! -x tests/integration/.agents/prometheus-alertmanager/usr/bin/prometheus-alertmanager ]] ||
    AM_BIN=$PWD/tests/integration/.agents/prometheus-alertmanager/usr/bin/prometheus-alertmanager
SCRATCH=${BENCH_SCRATCH:-$(dirname "$(mktemp -u)")/vigil-bench}
mkdir -p "$SCRATCH"
[[ -x $BIN/collector/vigild ]] || { echo "build first: cmake -S . -B $BIN -DCMAKE_BUILD_TYPE=Release && cmake --build $BIN -j" >&2; exit 2; }
[[ -n $AM_BIN ]] || { echo "prometheus-alertmanager is not installed (scripts/setup.sh --test)" >&2; exit 2; }
WORK=$(mktemp -d "$SCRATCH/alerts-XXXXXX")
PID=""
AMPID=""
stop_vigild() {
    if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; fi
    PID=""
}
stop_am() {
    if [[ -n $AMPID ]] && kill -0 "$AMPID" 2>/dev/null; then kill -TERM "$AMPID"; wait "$AMPID" 2>/dev/null || true; fi
    AMPID=""
}
trap 'stop_vigild; stop_am; rm -rf "$WORK"' EXIT INT TERM
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_am() {
    local d="$WORK/am-$1"
    mkdir -p "$d"
    printf 'route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n' > "$d/am.yml"
    AMPORT=$(free_port)
    "$AM_BIN" --config.file="$d/am.yml" --storage.path="$d/data" \
        --web.listen-address="127.0.0.1:$AMPORT" --cluster.listen-address= --log.level=warn \
        >"$d/am.log" 2>&1 &
    AMPID=$!
    for _ in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$AMPORT/-/ready" >/dev/null && return 0
        sleep 0.05
    done
    echo "alertmanager did not start" >&2; cat "$d/am.log" >&2; exit 1
}

# start_vigild DIR FORWARDING(0|1): sets PID, PORT, ADMIN
start_vigild() {
    local D=$1 fwd=$2
    $BIN/query/vigil pki init "$D/pki" >/dev/null
    {
        echo "store:  { path: $D/store, partition: 1h, compaction: off }"
        echo "tls:    { ca: pki/ca.pem, cert: pki/server.pem, key: pki/server-key.pem }"
        echo "listen: { forward: 127.0.0.1:0, syslog: null, https: null, admin: 127.0.0.1:0 }"
        echo "log:    { level: warn }"
        echo "rules:  { paths: [ $PWD/etc/rules ] }"
        if [[ $fwd == 1 ]]; then
            echo "forwarders:"
            echo "  - { name: am, type: alertmanager, url: 'http://127.0.0.1:$AMPORT' }"
        fi
    } > "$D/vigil.yaml"
    "$BIN/collector/vigild" -c "$D/vigil.yaml" --ready-fd 9 9>"$D/ready" 2>"$D/vigild.log" &
    PID=$!
    for _ in $(seq 1 200); do grep -q ready "$D/ready" 2>/dev/null && break; sleep 0.05; done
    PORT=$(sed -n 's/.*forward=127.0.0.1:\([0-9]*\).*/\1/p' "$D/ready")
    ADMIN=$(sed -n 's/.*admin=127.0.0.1:\([0-9]*\).*/\1/p' "$D/ready")
    [[ -n $PORT ]] || { echo "vigild did not start:" >&2; cat "$D/vigild.log" >&2; exit 1; }
}

check_log() {
    if grep -q " error: " "$1/vigild.log"; then
        echo "vigild logged errors:" >&2; grep " error: " "$1/vigild.log" | head >&2; exit 1
    fi
}

# ---- (A) latency ----
echo "== (A) event received -> alert accepted by Alertmanager, $N alerts"
start_am a
D="$WORK/latency"
mkdir -p "$D"
start_vigild "$D" 1
python3 - "$PORT" "$ADMIN" "$D/pki" "$AMPORT" "$N" <<'PY'
import json, sys, time, urllib.parse, urllib.request
sys.path.insert(0, "tests/integration")
from forward_client import ForwardClient
port, admin, pki, amport, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
c = ForwardClient(int(port), pki + "/ca.pem", pki + "/agent-node-1.pem",
                  pki + "/agent-node-1-key.pem")
def seen(pod):
    # the pod is one of the alert's labels: Alertmanager answers with that alert alone,
    # so polling costs the same at the 1000th alert as at the first
    q = "filter=%s&filter=%s" % (urllib.parse.quote('alertname="Shell spawned in a container"'),
                                 urllib.parse.quote('pod="%s"' % pod))
    with urllib.request.urlopen("http://127.0.0.1:%s/api/v2/alerts?%s" % (amport, q),
                                timeout=10) as r:
        return any(a["labels"].get("pod") == pod for a in json.loads(r.read()))
lat = []
for i in range(n):
    pod = "bench-%05d" % i
    now = time.time_ns()
    ev = {"output": "Notice A shell was spawned in a container with an attached terminal "
                    "(user=root k8s.ns=default k8s.pod=%s shell=sh cmdline=sh)" % pod,
          "priority": "Notice", "rule": "Terminal shell in container", "source": "syscall",
          "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)) + ".%09dZ" % (now % 10**9),
          "hostname": "node-1",
          "output_fields": {"container.id": "5892b41bcf46", "evt.time": now,
                            "k8s.ns.name": "default", "k8s.pod.name": pod, "proc.cmdline": "sh",
                            "proc.name": "sh", "proc.tty": 34817, "user.loginuid": -1,
                            "user.name": "root"}}
    t0 = time.monotonic()
    c.send_chunk("falco", [(now // 10**9, ev)], "c%d" % i)
    c.wait_ack()
    while not seen(pod):
        if time.monotonic() - t0 > 30:
            sys.exit("alert for %s never reached Alertmanager" % pod)
        time.sleep(0.002)
    lat.append(time.monotonic() - t0)
c.close()
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print("latency over %d alerts: median %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (n, 1e3 * pct(0.5), 1e3 * pct(0.9), 1e3 * pct(0.99), 1e3 * lat[-1]))
with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % admin, timeout=10) as r:
    text = r.read().decode()
b = [(l.split('le="')[1].split('"')[0], float(l.rsplit(" ", 1)[1])) for l in text.splitlines()
     if l.startswith("vigil_forwarder_delivery_seconds_bucket")]
cnt = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
       if l.startswith("vigil_forwarder_delivery_seconds_count")][0]
tot = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
       if l.startswith("vigil_forwarder_delivery_seconds_sum")][0]
print("vigild's histogram (alert recorded -> Alertmanager 200): %d deliveries, mean %.1f ms; "
      % (cnt, 1e3 * tot / cnt) + ", ".join("<=%ss %d" % (le, v) for le, v in b if v))
PY
stop_vigild
check_log "$D"

# ---- (B) ingest with forwarding on vs off ----
if [[ $M -eq 0 ]]; then stop_am; exit 0; fi
echo "== (B) ingest of $M events with the rule pack, forwarding off vs on, $RUNS runs each"
DATA="$SCRATCH/events-$M.ndjson"
if [[ ! -s $DATA ]]; then
    python3 bench/gen_events.py -n "$M" -o "$DATA.tmp" --seed 42
    mv "$DATA.tmp" "$DATA"
fi
python3 - "$DATA" "$WORK/events.ndjson" <<'PY'
import json, sys, time
src, dst = sys.argv[1], sys.argv[2]
S = 10**9
START, SPAN, NEW_SPAN = 1714521600 * S, 24 * 3600 * S, 170 * S
base = time.time_ns() - 175 * S
def iso(ts, digits):
    sec, ns = divmod(ts, S)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + "." + ("%09d" % ns)[:digits] + "Z"
def parse(s):
    p, frac = s.rstrip("Z").split(".")
    return (int(time.mktime(time.strptime(p, "%Y-%m-%dT%H:%M:%S"))) - time.timezone) * S + \
        int(frac.ljust(9, "0"))
new = lambda ts: base + (ts - START) * NEW_SPAN // SPAN
with open(src) as f, open(dst, "w") as o:
    for line in f:
        e = json.loads(line)
        if "output_fields" in e:
            ts = new(e["output_fields"]["evt.time"]); e["time"] = iso(ts, 9)
            e["output_fields"]["evt.time"] = ts
        elif "requestReceivedTimestamp" in e:
            ts = new(parse(e["requestReceivedTimestamp"]))
            e["requestReceivedTimestamp"] = iso(ts, 6); e["stageTimestamp"] = iso(ts + 20 * 10**6, 6)
        elif "@timestamp" in e:
            ts = new(parse(e["@timestamp"])); e["@timestamp"] = iso(ts, 6)
            e["syslog_line"] = time.strftime("%b %d %H:%M:%S", time.gmtime(ts // S)) + e["syslog_line"][15:]
        elif "timestamp" in e:
            e["timestamp"] = iso(new(parse(e["timestamp"])), 6)
        o.write(json.dumps(e, separators=(",", ":")) + "\n")
PY
results=()
for r in $(seq 1 "$RUNS"); do
    for fwd in 0 1; do
        D=$(mktemp -d "$WORK/ingest-XXXXXX")
        start_vigild "$D" "$fwd"
        c0=$(cpu_s "$PID")
        out=$(python3 - "$BIN/query/vigil" "$PORT" "$ADMIN" "$D/pki" "$WORK/events.ndjson" "$M" <<'PY'
import subprocess, sys, time, urllib.request
vigil, port, admin, pki, data, n = sys.argv[1:7]
n = int(n)
def metrics():
    with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % admin, timeout=10) as r:
        return {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1])
                for l in r.read().decode().splitlines() if l and not l.startswith("#")}
t0 = time.time()
subprocess.run([vigil, "send", "--server", "127.0.0.1:" + port, "--ca", pki + "/ca.pem",
                "--cert", pki + "/agent-node-1.pem", "--key", pki + "/agent-node-1-key.pem",
                data], check=True, stdout=subprocess.DEVNULL)
while True:
    m = metrics()
    stored, alerts = m.get("vigil_events_stored_total", 0), m.get("vigil_rules_alerts_total", 0)
    if m.get("vigil_rules_events_total", 0) >= n and stored >= n + alerts:
        break
    if time.time() - t0 > 900:
        sys.exit("timed out: %s" % m)
    time.sleep(0.02)
wall = time.time() - t0
sent = m.get('vigil_forwarder_sent_total{forwarder="am",type="alertmanager"}', 0)
print("%.3f %d %d" % (wall, alerts, sent))
PY
)
        c1=$(cpu_s "$PID")
        read -r wall alerts sent <<<"$out"
        stop_vigild
        check_log "$D"
        eps=$(python3 -c "print('%.0f' % ($M / $wall))")
        us=$(python3 -c "print('%.1f' % (($c1 - $c0) * 1e6 / $M))")
        echo "run $r forwarding $([[ $fwd == 1 ]] && echo on || echo off): $eps events/s, vigild $us us CPU/event, $alerts alerts stored, $sent taken by Alertmanager so far"
        results+=("$fwd $eps $us")
        rm -rf "$D"
    done
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
for fwd in ("0", "1"):
    e = [float(r[1]) for r in rows if r[0] == fwd]
    u = [float(r[2]) for r in rows if r[0] == fwd]
    print("forwarding %-3s median %8.0f events/s, %5.1f us CPU/event" %
          ("on" if fwd == "1" else "off", statistics.median(e), statistics.median(u)))'
stop_am
