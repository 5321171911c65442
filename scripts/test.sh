#!/usr/bin/env bash
# Quick start 2: set up, build with AddressSanitizer + UBSan, and run every test:
# cmocka unit tests, fuzz-corpus replays and integration tests against the real vigild.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DVG_SANITIZE=address,undefined >/dev/null
cmake --build build/asan -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export VG_TIMEOUT_MULT=${VG_TIMEOUT_MULT:-3}
# setup.sh --test installed every client the integration tests drive: a missing one fails.
export VG_REQUIRE_CLIENTS=1
cd build/asan
ctest --output-on-failure -j"$(nproc)" "$@"
