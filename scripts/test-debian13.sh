#!/usr/bin/env bash
# The whole test suite again on Debian 13 (LibTorch 2.6), inside a debootstrap root that is
# made once and reused (scripts/debian13.sh): the README's test command, run in that root,
# building in build-debian13/ so the host's build/ is untouched.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
started=$(date +%s)
"$root/scripts/debian13.sh" env ECHOKV_BUILD_DIR=/src/echokv/build-debian13 scripts/test.sh
echo "test-debian13: passed in $(( $(date +%s) - started )) s"
