#!/usr/bin/env bash
# Quick start 1: set up, build, and run `vigil demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DVG_WERROR=OFF >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
exec build/release/query/vigil demo "$@"
