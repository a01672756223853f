#!/usr/bin/env bash
# Configure and build everything (library, apps, tests, benchmarks) in ./build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ECHOKV_BUILD_DIR:-$root/build}"
jobs="${ECHOKV_JOBS:-$(nproc)}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"
