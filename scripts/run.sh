#!/usr/bin/env bash
# The main job: set up (dependencies, build) and run the toolkit on the default model.
# Today (foundation stage) that is: load the default model, report its shape, and generate
# greedily from BOS, printing the token ids. Later stages extend this script to the full
# analyze -> train -> evaluate pipeline.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
bin="${ECHOKV_BUILD_DIR:-$root/build}/bin"
shared="${ECHOKV_SHARED:-$root/../shared}"
# Default model: the project's own testbed model once it ships (data/models/), else
# stories260K from ../shared.
model="${ECHOKV_MODEL:-}"
if [ -z "$model" ]; then
  for candidate in "$root"/data/models/*/ "$shared/fixtures/reference/stories260K"; do
    if [ -f "$candidate/config.json" ]; then model="$candidate"; break; fi
  done
fi
[ -n "$model" ] || { echo "run.sh: no default model found (set ECHOKV_MODEL)" >&2; exit 1; }
echo "== model: $model"
echo "== greedy continuation of BOS (64 tokens)"
"$bin/echokv-eval" generate --model "$model" --ids 1 --max-new-tokens 64 --greedy --json
