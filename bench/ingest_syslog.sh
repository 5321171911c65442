#!/usr/bin/env bash
# Syslog ingest, side by side in one run: vigild's syslog listener vs rsyslog, both
# receiving the same RFC 5425 stream (octet-counted RFC 5424 frames of the realistic
# event mix, shared/bench/gen_events.py --syslog-out) over one mutual-TLS connection (or CONNS) on
# 127.0.0.1, sent by the same client (shared/bench/rsyslog/tls_sender.py) with the same
# PKI (shared/bench/make_certs.sh).
#   vigild:  parse, normalize, index, lz4, group-commit fsync; done when /metrics shows
#            every event stored (durable).
#   rsyslog: imtcp + ossl driver into one file, the tuned profile of
#            shared/bench/rsyslog/recv-tuned.conf.in (async writes, no fsync); done when
#            the file holds every message (shared/bench/rsyslog/measure.py).
# Runs are interleaved (vigild, rsyslog, vigild, ...); prints each run, the medians of
# events/s and CPU per event, and the ratio vigild/rsyslog.
# CONNS > 1: the frames are cut into CONNS files (whole frames) and CONNS senders run at
# once, one connection each, against both receivers (rsyslog's run is then watched here,
# as measure.py watches one sender: done when the file holds every message).
# usage: bench/ingest_syslog.sh [N=300000] [RUNS=3] [CONNS=1]
# Needs a release build in $VG_BUILD (default build/release: cmake -S . -B build/release
# -DCMAKE_BUILD_TYPE=Release && cmake --build build/release -j) and rsyslogd with
# rsyslog-openssl. Binds 127.0.0.1 only; stops what it started by PID.
set -euo pipefail
# vigild refuses to keep root unless told: these runs are throwaway stores.
ALLOW_ROOT=()
if [[ $EUID -eq 0 ]]; then ALLOW_ROOT=(--allow-root); fi
cd "$(dirname "$0")/.."
N=${1:-300000}
RUNS=${2:-3}
CONNS=${3:-1}
BENCH=$(cd "${VG_BENCH_DIR:-../shared/bench}" && pwd)
BIN=${VG_BUILD:-build/release}
SCRATCH=${BENCH_SCRATCH:-$(dirname "$(mktemp -u)")/vigil-bench}
RS_PORT=${RS_PORT:-16514}
mkdir -p "$SCRATCH"
[[ -x $BIN/collector/vigild ]] || { echo "build first: cmake -S . -B $BIN -DCMAKE_BUILD_TYPE=Release && cmake --build $BIN -j" >&2; exit 2; }
command -v rsyslogd >/dev/null || { echo "rsyslogd not installed (apt-get install rsyslog rsyslog-openssl)" >&2; exit 2; }

FRAMES="$SCRATCH/syslog-frames-$N.bin"
if [[ ! -s $FRAMES ]]; then
    echo "generating $N RFC 5425 frames into $FRAMES" >&2
    python3 "$BENCH/gen_events.py" -n "$N" --seed 7 -o /dev/null --syslog-out "$FRAMES.tmp"
    mv "$FRAMES.tmp" "$FRAMES"
fi
PARTS="$FRAMES"
if [[ $CONNS -gt 1 ]]; then
    PARTS=$(python3 - "$FRAMES" "$CONNS" <<'PY'
import os, sys
frames, k = sys.argv[1], int(sys.argv[2])
names = ["%s.part%d-%d" % (frames, k, i) for i in range(k)]
if not all(os.path.exists(n) and os.path.getmtime(n) >= os.path.getmtime(frames) for n in names):
    data = open(frames, "rb").read()
    offs, i = [], 0
    while i < len(data):  # octet-counted: "LEN SP FRAME"
        sp = data.index(b" ", i)
        offs.append(i)
        i = sp + 1 + int(data[i:sp])
    offs.append(len(data))
    per = (len(offs) - 1 + k - 1) // k
    for j, n in enumerate(names):
        a, b = offs[min(j * per, len(offs) - 1)], offs[min((j + 1) * per, len(offs) - 1)]
        open(n + ".tmp", "wb").write(data[a:b])
        os.replace(n + ".tmp", n)
print(":".join(names))
PY
)
fi
PKI="$SCRATCH/syslog-pki"
[[ -s $PKI/client.pem ]] || "$BENCH/make_certs.sh" "$PKI" 2>/dev/null

PID=""
cleanup() {
    if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; fi
    PID=""
}
trap cleanup EXIT INT TERM
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat"; }

run_vigild() { # sets RES="eps us_per_event wall_s store_ratio"
    local D
    D=$(mktemp -d "$SCRATCH/syslog-run-XXXXXX")
    cat > "$D/vigil.yaml" <<YAML
store:  { path: $D/store, partition: 1h }
# make_certs.sh's client is CN=client.bench.test with no OU=agents: let it in by name.
tls:    { ca: $PKI/ca.pem, cert: $PKI/server.pem, key: $PKI/server.key,
          agents: { subjects: [ client.bench.test ] } }
listen: { forward: null, syslog: 127.0.0.1:0, https: null, admin: 127.0.0.1:0 }
log:    { level: warn }
YAML
    "$BIN/collector/vigild" -c "$D/vigil.yaml" --ready-fd 9 "${ALLOW_ROOT[@]}" 9>"$D/ready" 2>"$D/vigild.log" &
    PID=$!
    for _ in $(seq 1 200); do grep -q ready "$D/ready" 2>/dev/null && break; sleep 0.05; done
    local port admin
    port=$(sed -n 's/.*syslog=127.0.0.1:\([0-9]*\).*/\1/p' "$D/ready")
    admin=$(sed -n 's/.*admin=127.0.0.1:\([0-9]*\).*/\1/p' "$D/ready")
    [[ -n $port ]] || { echo "vigild did not start:" >&2; cat "$D/vigild.log" >&2; exit 1; }
    local c0 out
    c0=$(cpu_s "$PID")
    # Sender and watcher: wall time from the first byte sent to the last event durable.
    out=$(python3 - "$port" "$admin" "$PARTS" "$PKI" "$N" "$BENCH/rsyslog/tls_sender.py" <<'PY'
import json, subprocess, sys, time, urllib.request
port, admin, parts, pki, n, sender = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
def stored():
    with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % admin, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("vigil_events_stored_total "):
                return int(float(line.split()[1]))
    return 0
t0 = time.time()
snds = [subprocess.Popen([sys.executable, sender, port, f, pki], stdout=subprocess.PIPE)
        for f in parts.split(":")]
s = 0
while s < n and time.time() - t0 < 600:
    time.sleep(0.02)
    s = stored()
t1 = time.time()
# Done once everything is durable. The sender's TLS unwrap() waits for a close_notify
# that vigild does not send back (conn.c): stop it instead of waiting.
for snd in snds:
    snd.kill()
    snd.communicate()
print("%d %.3f" % (s, t1 - t0))
PY
)
    local c1 got wall
    c1=$(cpu_s "$PID")
    read -r got wall <<<"$out"
    local size
    size=$(du -sb "$D/store" | cut -f1)
    cleanup
    [[ $got -ge $N ]] || { echo "vigild stored $got of $N events; log:" >&2; tail -20 "$D/vigild.log" >&2; exit 1; }
    RES=$(awk -v n="$N" -v w="$wall" -v c0="$c0" -v c1="$c1" -v sz="$size" -v fr="$(stat -c %s "$FRAMES")" \
        'BEGIN{printf "%.0f %.2f %.2f %.2f\n", n/w, (c1-c0)*1e6/n, w, fr/sz}')
    rm -rf "$D"
}

run_rsyslog() { # sets RES="eps us_per_event wall_s"
    local W="$SCRATCH/syslog-rsyslog"
    rm -rf "$W"; mkdir -p "$W/work" "$W/pki"
    # recv-tuned.conf.in wants @PKI@/server.key and the client CN client.bench.test.
    sed -e "s#@WORK@#$W/work#; s#@PKI@#$PKI#g; s#@PORT@#$RS_PORT#; s#@OUT@#$W/out.log#; s#@AUTHMODE@#x509/name#" \
        "$BENCH/rsyslog/recv-tuned.conf.in" > "$W/recv.conf"
    rsyslogd -N1 -f "$W/recv.conf" >/dev/null 2>&1 || { rsyslogd -N1 -f "$W/recv.conf"; exit 1; }
    rsyslogd -n -f "$W/recv.conf" -i "$W/rsyslogd.pid" > "$W/rsyslogd.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$RS_PORT " && break; sleep 0.1; done
    local j
    if [[ $CONNS -gt 1 ]]; then
        j=$(python3 - "$RS_PORT" "$PARTS" "$PKI" "$W/out.log" "$PID" "$BENCH/rsyslog/tls_sender.py" <<'PY'
import json, os, subprocess, sys, time
port, parts, pki, outfile, pid, sender = sys.argv[1:7]
tck = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tck
n = exp = 0  # events, and the bytes the file holds once all are written (as measure.py)
for part in parts.split(":"):
    data, i = open(part, "rb").read(), 0
    while i < len(data):
        sp = data.index(b" ", i)
        ln = int(data[i:sp])
        exp += len(data[sp + 1: sp + 1 + ln].split(b" ", 7)[7]) + 1
        n += 1
        i = sp + 1 + ln
c0, t0 = cpu(), time.time()
snds = [subprocess.Popen([sys.executable, sender, port, f, pki], stdout=subprocess.PIPE)
        for f in parts.split(":")]
sz = 0
while time.time() - t0 < 600:
    time.sleep(0.01)
    sz = os.path.getsize(outfile) if os.path.exists(outfile) else 0
    if sz >= exp:
        break
t1, c1 = time.time(), cpu()
for snd in snds:
    snd.communicate(timeout=60)
print(json.dumps({"complete": sz >= exp, "eps_total": n / (t1 - t0), "wall_s": t1 - t0,
                  "receiver_cpu_us_per_event": 1e6 * (c1 - c0) / n}))
PY
)
    else
        j=$(python3 "$BENCH/rsyslog/measure.py" "$RS_PORT" "$FRAMES" "$PKI" "$W/out.log" "$PID" 600)
    fi
    cleanup
    RES=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["complete"], d; print("%.0f %.2f %.2f" % (d["eps_total"], d["receiver_cpu_us_per_event"], d["wall_s"]))' "$j")
    rm -rf "$W"
}

v_rates=(); v_cpu=(); r_rates=(); r_cpu=()
for run in $(seq 1 "$RUNS"); do
    run_vigild
    read -r eps us wall ratio <<<"$RES"
    echo "run $run vigild:  $eps events/s, ${us} us CPU/event, ${wall} s, store ${ratio}x smaller than the frames"
    v_rates+=("$eps"); v_cpu+=("$us")
    run_rsyslog
    read -r eps us wall <<<"$RES"
    echo "run $run rsyslog: $eps events/s, ${us} us CPU/event, ${wall} s"
    r_rates+=("$eps"); r_cpu+=("$us")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if(NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
vm=$(median "${v_rates[@]}"); rm_=$(median "${r_rates[@]}")
echo "median over $RUNS runs of $N events (RFC 5425 over mTLS, $CONNS connection(s)):"
echo "  vigild syslog listener: $vm events/s, $(median "${v_cpu[@]}") us CPU/event (durable, indexed, compressed)"
echo "  rsyslog -> file:        $rm_ events/s, $(median "${r_cpu[@]}") us CPU/event"
echo "  ratio vigild/rsyslog:   $(awk -v a="$vm" -v b="$rm_" 'BEGIN{printf "%.2f", a/b}')"
