#!/usr/bin/env bash
# tests/fuzz/campaign.sh SECONDS [TARGET…]: a fuzzing campaign. Builds every libFuzzer
# target with clang, AddressSanitizer and UBSan (build/fuzz), then runs each target (all of
# tests/fuzz/fuzz_*.c, or the TARGETs named, e.g. "forward https") for SECONDS seconds,
# VG_FUZZ_JOBS targets at a time (default: the number of CPUs). Warnings do not stop the
# build (clang warns where gcc, which CI builds with -Werror, does not).
#
# Each target starts from a copy of its seed corpus (tests/fuzz/corpus/<target>/) in the
# campaign directory (VG_FUZZ_DIR, default build/fuzz/campaign-<UTC time>), so the seeds in
# the tree are not changed; new inputs worth keeping can be minimized back into the tree
# with libFuzzer's -merge=1 by hand. A crash, leak, sanitizer report or timeout leaves its
# input in <dir>/<target>/artifacts/ and its log in <dir>/<target>/log.
#
# Prints one line per target (runs, coverage, corpus size, crashes) and exits 1 when any
# target found something, 2 on a usage or build error, 0 when every target ran clean.
set -euo pipefail
cd "$(dirname "$0")/../.."

usage() {
    echo "usage: tests/fuzz/campaign.sh SECONDS [TARGET…]" >&2
    exit 2
}
[[ $# -ge 1 && $1 =~ ^[1-9][0-9]*$ ]] || usage
secs=$1
shift

all=()
for f in tests/fuzz/fuzz_*.c; do
    n=${f##*/fuzz_}
    all+=("${n%.c}")
done
if [[ $# -gt 0 ]]; then
    targets=("$@")
    for t in "${targets[@]}"; do
        if [[ ! -f tests/fuzz/fuzz_$t.c ]]; then
            echo "campaign: no fuzz target '$t' (targets: ${all[*]})" >&2
            exit 2
        fi
    done
else
    targets=("${all[@]}")
fi

if ! command -v clang >/dev/null; then
    echo "campaign: clang is needed for libFuzzer (apt-get install clang)" >&2
    exit 2
fi
build=build/fuzz
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVG_FUZZ=ON -DVG_WERROR=OFF \
    -DVG_SANITIZE=address,undefined >/dev/null ||
    { echo "campaign: cmake failed for $build" >&2; exit 2; }
bins=()
for t in "${targets[@]}"; do bins+=("fuzz_$t"); done
cmake --build "$build" -j"$(nproc)" --target "${bins[@]}" >"$build/campaign-build.log" 2>&1 ||
    { echo "campaign: build failed, see $build/campaign-build.log" >&2; exit 2; }

dir=${VG_FUZZ_DIR:-$build/campaign-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$dir"
jobs=${VG_FUZZ_JOBS:-$(nproc)}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_one() {
    local t=$1 d="$dir/$1"
    mkdir -p "$d/corpus" "$d/artifacts"
    cp -a "tests/fuzz/corpus/$t/." "$d/corpus/"
    # -rss_limit_mb keeps a target honest about memory; -timeout flags a hang as a finding.
    "$build/tests/fuzz/fuzz_$t" "$d/corpus" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$d/artifacts/" -print_final_stats=1 \
        >"$d/log" 2>&1
    echo $? >"$d/rc"
}

echo "campaign: ${#targets[@]} targets, ${secs}s each, $jobs at a time, in $dir" >&2
running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if ((running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

found=0
printf '%-14s %12s %8s %8s %8s  %s\n' target runs cov corpus crashes result
for t in "${targets[@]}"; do
    d="$dir/$t"
    rc=$(cat "$d/rc" 2>/dev/null || echo 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$d/log" | tail -1 | cut -d' ' -f2)
    ncorp=$(find "$d/corpus" -type f | wc -l)
    ncrash=$(find "$d/artifacts" -type f | wc -l)
    if [[ $rc == 0 && $ncrash == 0 ]]; then
        result=clean
    else
        result="FOUND (exit $rc): $d/log"
        found=1
    fi
    printf '%-14s %12s %8s %8s %8s  %s\n' "$t" "${runs:-?}" "${cov:-?}" "$ncorp" "$ncrash" \
        "$result"
done
exit $found
