#!/usr/bin/env bash
# The test command: install dependencies (only what is missing), build, run every test.
# Tests read ../shared (override with ECHOKV_SHARED) and fail loudly if it is missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
build="${ECHOKV_BUILD_DIR:-$root/build}"
cd "$build"
ctest --output-on-failure -j "${ECHOKV_JOBS:-$(nproc)}"
