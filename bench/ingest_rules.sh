#!/usr/bin/env bash
# Ingest with rules on: `vigil send` -> vigild over mutual TLS, N events of the realistic
# mix (shared/bench/gen_events.py, seed 42), with 0, 50 and 200 loaded Sigma rules.
#   rule sets: the default pack (etc/rules, 15 rules: 9 that alert, 6 that feed its
#              correlations) once, then the shared corpus's SigmaHQ rules (linux and
#              kubernetes/audit, the ones that load) repeated under fresh ids and titles
#              up to the count; `vigil rules check` must load exactly that many.
#   events:    re-dated to the last 3 minutes before each run (event order and spacing
#              kept, 24 h squeezed): vigild's rules timer follows the wall clock and its
#              correlations do not count events dated minutes before they arrive, so
#              old-dated data would skip correlation work. Squeezed, the generator's
#              Zipf-heavy addresses make SSH brute force and spraying fire far more often
#              than at its own density: the alert counts are printed.
#   done:      when every event is durable and evaluated and every alert it raised is
#              stored (admin /metrics): vigil_rules_events_total >= N and
#              vigil_events_stored_total == N + vigil_rules_alerts_total.
# Runs are interleaved (0, 50, 200, 0, ...); prints each run, the medians of events/s and
# of vigild's CPU per event, and the cost per loaded rule.
# usage: bench/ingest_rules.sh [N=300000] [RUNS=3] [COUNTS="0 50 200"]
#
# Measured (2-core development VM shared with other builds, load average 5-7: wall rates
# swing 2x between runs, CPU per event less; 300,000 events, medians of 3, release):
#   rules  events/s  vigild CPU/event  alerts stored
#       0    50,251          10.1 us               0
#      15    29,418          16.0 us          74,340   (the pack alone)
#      50    33,105          17.1 us         114,804
#     200    25,573          22.7 us         240,060
# Per loaded rule, 50 -> 200: 0.037 us of vigild CPU per event, alerts included. On this
# mix the rules' cost is mostly their alerts, each stored like an event: the pack's
# container shell rule alone fires on 18% of the generator's events, and the SigmaHQ
# copies on the generator's attack-like command lines (wget to /tmp, nc -e, log
# clearing) and audit events; a fit of CPU against alerts and rule count leaves the
# per-rule evaluation cost within the noise (rules_eval.sh measures evaluation alone).
# Needs a release build in $VG_BUILD (default build/release). Binds 127.0.0.1 only;
# stops vigild by PID.
set -euo pipefail
# vigild refuses to keep root unless told: these runs are throwaway stores.
ALLOW_ROOT=()
if [[ $EUID -eq 0 ]]; then ALLOW_ROOT=(--allow-root); fi
cd "$(dirname "$0")/.."
N=${1:-300000}
RUNS=${2:-3}
COUNTS=${3:-"0 50 200"}
BENCH=$(cd "${VG_BENCH_DIR:-../shared/bench}" && pwd)
CORPUS=$(cd "${VG_CORPUS_DIR:-../shared/corpus}" && pwd)
BIN=${VG_BUILD:-build/release}
SCRATCH=${BENCH_SCRATCH:-$(dirname "$(mktemp -u)")/vigil-bench}
mkdir -p "$SCRATCH"
[[ -x $BIN/collector/vigild ]] || { echo "build first: cmake -S . -B $BIN -DCMAKE_BUILD_TYPE=Release && cmake --build $BIN -j" >&2; exit 2; }
DATA="$SCRATCH/events-$N.ndjson"
if [[ ! -s $DATA ]]; then
    echo "generating $N events into $DATA" >&2
    python3 "$BENCH/gen_events.py" -n "$N" -o "$DATA.tmp" --seed 42
    mv "$DATA.tmp" "$DATA"
fi
WORK=$(mktemp -d "$SCRATCH/rules-ingest-XXXXXX")
PID=""
cleanup() {
    if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; fi
    PID=""
}
trap 'cleanup; rm -rf "$WORK"' EXIT INT TERM
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat"; }

# ---- rule sets ----
for k in $COUNTS; do
    [[ $k -eq 0 ]] && continue
    python3 - "$WORK/rules-$k" "$k" etc/rules "$CORPUS/sigma/rules" <<'PY'
import os, re, shutil, sys, uuid
out, want, pack, sigma = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.makedirs(out)
n = 0
for f in sorted(os.listdir(pack)):
    if f.endswith(".yml") and not f.endswith(".tests.yml"):
        shutil.copy(os.path.join(pack, f), out)
        n += len(re.findall(r"^title:", open(os.path.join(pack, f)).read(), re.M))
files = []
for d, _, fs in sorted(os.walk(sigma)):
    files += [os.path.join(d, f) for f in sorted(fs) if f.endswith(".yml")]
copy = 0
while n < want:
    for f in files:
        if n >= want:
            break
        text = open(f).read()
        if "correlation:" in text:
            continue
        m = re.search(r"^id: *(\S+)", text, re.M)
        new_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "%s#%d" % (m.group(1) if m else f, copy)))
        text = re.sub(r"^id: *\S+", "id: " + new_id, text, count=1, flags=re.M)
        text = re.sub(r"^title: *(.*)$", lambda t: "title: %s (copy %d)" % (t.group(1), copy),
                      text, count=1, flags=re.M)
        with open(os.path.join(out, "c%d_%s" % (copy, os.path.basename(f))), "w") as o:
            o.write(text)
        n += 1
    copy += 1
PY
    got=$($BIN/query/vigil rules check -q "$WORK/rules-$k" | tail -1)
    case $got in
        "$k loaded, 0 unsupported, 0 invalid") ;;
        *) echo "rule set $k: $got (a corpus rule did not load; fix the selection)" >&2; exit 1 ;;
    esac
done

# ---- one run ----
retime() { # re-dates $DATA into $WORK/events.ndjson over the 3 minutes before now
    python3 - "$DATA" "$WORK/events.ndjson" <<'PY'
import json, sys, time
src, dst = sys.argv[1], sys.argv[2]
S = 10**9
START, SPAN, NEW_SPAN = 1714521600 * S, 24 * 3600 * S, 170 * S  # gen_events.py's START_NS
base = time.time_ns() - 175 * S
cache = {}
def iso(ts, digits):
    sec, ns = divmod(ts, S)
    p = cache.get(sec)
    if p is None:
        if len(cache) > 4096:
            cache.clear()
        p = cache[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return "%s.%sZ" % (p, ("%09d" % ns)[:digits])
def parse(s):
    p, frac = s.rstrip("Z").split(".")
    t = time.strptime(p, "%Y-%m-%dT%H:%M:%S")
    return (int(time.mktime(t)) - time.timezone) * S + int(frac.ljust(9, "0"))
def new(ts):
    return base + (ts - START) * NEW_SPAN // SPAN
with open(src) as f, open(dst, "w") as o:
    for line in f:
        e = json.loads(line)
        if "output_fields" in e:
            ts = new(e["output_fields"]["evt.time"])
            e["time"] = iso(ts, 9)
            e["output_fields"]["evt.time"] = ts
        elif "requestReceivedTimestamp" in e:
            ts = new(parse(e["requestReceivedTimestamp"]))
            e["requestReceivedTimestamp"] = iso(ts, 6)
            e["stageTimestamp"] = iso(ts + 20 * 10**6, 6)
        elif "@timestamp" in e:
            ts = new(parse(e["@timestamp"]))
            e["@timestamp"] = iso(ts, 6)
            e["syslog_line"] = time.strftime("%b %d %H:%M:%S", time.gmtime(ts // S)) + e["syslog_line"][15:]
        elif "timestamp" in e:
            e["timestamp"] = iso(new(parse(e["timestamp"])), 6)
        o.write(json.dumps(e, separators=(",", ":")) + "\n")
PY
}

run_one() { # $1 = rule count; sets RES="eps us_per_event alerts wall"
    local k=$1 D
    D=$(mktemp -d "$WORK/run-XXXXXX")
    $BIN/query/vigil pki init "$D/pki" >/dev/null
    {
        echo "store:  { path: $D/store, partition: 1h }"
        echo "tls:    { ca: pki/ca.pem, cert: pki/server.pem, key: pki/server-key.pem }"
        echo "listen: { forward: 127.0.0.1:0, syslog: null, https: null, admin: 127.0.0.1:0 }"
        echo "log:    { level: warn }"
        [[ $k -gt 0 ]] && echo "rules:  { paths: [ $WORK/rules-$k ] }"
    } > "$D/vigil.yaml"
    retime
    "$BIN/collector/vigild" -c "$D/vigil.yaml" --ready-fd 9 "${ALLOW_ROOT[@]}" 9>"$D/ready" 2>"$D/vigild.log" &
    PID=$!
    for _ in $(seq 1 200); do grep -q ready "$D/ready" 2>/dev/null && break; sleep 0.05; done
    local port admin
    port=$(sed -n 's/.*forward=127.0.0.1:\([0-9]*\).*/\1/p' "$D/ready")
    admin=$(sed -n 's/.*admin=127.0.0.1:\([0-9]*\).*/\1/p' "$D/ready")
    [[ -n $port ]] || { echo "vigild did not start:" >&2; cat "$D/vigild.log" >&2; exit 1; }
    local c0 out
    c0=$(cpu_s "$PID")
    out=$(python3 - "$BIN/query/vigil" "$port" "$admin" "$D/pki" "$WORK/events.ndjson" "$N" "$k" <<'PY'
import subprocess, sys, time, urllib.request
vigil, port, admin, pki, data, n, k = sys.argv[1:8]
n, k = int(n), int(k)
def metrics():
    with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % admin, timeout=10) as r:
        m = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, v = line.rsplit(" ", 1)
                m[name] = float(v)
        return m
t0 = time.time()
subprocess.run([vigil, "send", "--server", "127.0.0.1:" + port, "--ca", pki + "/ca.pem",
                "--cert", pki + "/agent-node-1.pem", "--key", pki + "/agent-node-1-key.pem",
                data], check=True, stdout=subprocess.DEVNULL)
while True:
    m = metrics()
    stored = m.get("vigil_events_stored_total", 0)
    alerts = m.get("vigil_rules_alerts_total", 0)
    if stored >= n and (k == 0 or (m.get("vigil_rules_events_total", 0) >= n and
                                   stored >= n + alerts)):
        break
    if time.time() - t0 > 900:
        sys.exit("timed out: %s" % m)
    time.sleep(0.02)
print("%.3f %d %d" % (time.time() - t0, alerts, m.get("vigil_rules_groups_evicted_total", 0)))
PY
)
    local c1 wall alerts evicted
    c1=$(cpu_s "$PID")
    read -r wall alerts evicted <<<"$out"
    cleanup
    if grep -q " error: " "$D/vigild.log"; then echo "vigild logged errors:" >&2; grep " error: " "$D/vigild.log" | head >&2; exit 1; fi
    RES=$(awk -v n="$N" -v w="$wall" -v c0="$c0" -v c1="$c1" -v a="$alerts" \
        'BEGIN{printf "%.0f %.2f %d %.2f\n", n/w, (c1-c0)*1e6/n, a, w}')
    rm -rf "$D"
}

declare -A rates cpus alerts_of
for run in $(seq 1 "$RUNS"); do
    for k in $COUNTS; do
        run_one "$k"
        read -r eps us alerts wall <<<"$RES"
        echo "run $run, $k rules: $eps events/s, ${us} us vigild CPU/event, $alerts alerts stored, ${wall} s"
        rates[$k]="${rates[$k]:-} $eps"
        cpus[$k]="${cpus[$k]:-} $us"
        alerts_of[$k]=$alerts
    done
done
median() { printf '%s\n' $@ | sort -g | awk '{a[NR]=$1} END{ if(NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
echo "medians over $RUNS runs of $N events (Forward over mTLS, one connection, durable):"
base_eps=""; base_us=""
for k in $COUNTS; do
    e=$(median ${rates[$k]}); u=$(median ${cpus[$k]})
    if [[ -z $base_eps ]]; then base_eps=$e; base_us=$u; fi
    per=""
    if [[ $k -gt 0 ]]; then
        per=$(awk -v k="$k" -v e="$e" -v b="$base_eps" -v u="$u" -v bu="$base_us" \
            'BEGIN{printf "; per rule: %.3f us wall, %.3f us CPU per event", (1e6/e-1e6/b)/k, (u-bu)/k}')
    fi
    echo "  $k rules: $e events/s, $u us CPU/event, ${alerts_of[$k]} alerts$per"
done
