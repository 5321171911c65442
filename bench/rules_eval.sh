#!/usr/bin/env bash
# Rules evaluation throughput: events/s through rules_engine_eval with 0, 50 and 200
# loaded Sigma rules (the shared corpus's SigmaHQ rules repeated under fresh ids, plus an
# sshd brute-force event_count and a value_count spray), on N records mapped from the
# realistic mix (shared/bench/gen_events.py, seed 42). Prints the median of RUNS passes
# and the cost per rule.
# usage: bench/rules_eval.sh [N=200000] [RUNS=3]
# Builds bench/rules_eval.c in a release build (build/release).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
RUNS=${2:-3}
BENCH=${VG_BENCH_DIR:-../shared/bench}
CORPUS=${VG_CORPUS_DIR:-../shared/corpus}
BIN=${VG_BUILD_DIR:-build/release}
SCRATCH=${BENCH_SCRATCH:-$(dirname "$(mktemp -u)")/vigil-bench}
mkdir -p "$SCRATCH"
DATA="$SCRATCH/events-$N.ndjson"
if [[ ! -f $BIN/CMakeCache.txt ]]; then
    cmake -S . -B "$BIN" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BIN" --target rules_eval_bench -j"$(nproc)" >/dev/null
if [[ ! -s $DATA ]]; then
    echo "generating $N events into $DATA" >&2
    python3 "$BENCH/gen_events.py" -n "$N" -o "$DATA" --seed 42
fi
"$BIN/rules/rules_eval_bench" "$DATA" "$CORPUS/sigma" "$RUNS"
