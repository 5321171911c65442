#!/usr/bin/env bash
# Per-event CPU of vigild's parse/map/encode stages on their own (bench/ingest_stages.c):
# json_to_mp (HTTPS NDJSON), forward_decode + forward_iter_next (PackedForward),
# map_event, rec_encode; single thread, no I/O, best of RUNS passes over N events of the
# realistic mix (shared/bench/gen_events.py, seed 42).
# usage: bench/ingest_stages.sh [N=200000] [RUNS=5]
# Needs a release build in $VG_BIN_DIR (default build/release).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
RUNS=${2:-5}
BENCH=${VG_BENCH_DIR:-../shared/bench}
B=${VG_BIN_DIR:-build/release}
SCRATCH=${BENCH_SCRATCH:-$(dirname "$(mktemp -u)")/vigil-bench}
mkdir -p "$SCRATCH"
DATA="$SCRATCH/events-$N.ndjson"
[[ -f $B/schemas/libvg_schemas.a ]] || { echo "build first: cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release && cmake --build $B -j" >&2; exit 2; }
if [[ ! -s $DATA ]]; then
    echo "generating $N events into $DATA" >&2
    python3 "$BENCH/gen_events.py" -n "$N" -o "$DATA" --seed 42
fi
EXE="$SCRATCH/ingest_stages"
cc -O2 -D_GNU_SOURCE -I. -o "$EXE" bench/ingest_stages.c "$B/schemas/libvg_schemas.a" \
    "$B/common/libvg_common.a" $(pkg-config --libs yajl msgpack zlib openssl) -lm
"$EXE" "$DATA" "$RUNS"
