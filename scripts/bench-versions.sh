#!/usr/bin/env bash
# LibTorch 1.13 (this Debian 12 machine, build/) against LibTorch 2.6 (the Debian 13 root,
# build-debian13/) on the same CPU, alternating the two builds run by run so that machine
# noise falls on both alike. Needs both builds (scripts/build.sh; scripts/test-debian13.sh).
#   scripts/bench-versions.sh [OUT_DIR]    (default benchmarks/results/versions/)
# REPS (default 2) alternations of: model (float32, bfloat16), train-step, echo-decode
# (float32, bfloat16), each JSON kept as <bench>-<dtype>-torch<version>-<rep>.json.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/benchmarks/results/versions}"
reps="${REPS:-2}"
mkdir -p "$out"
[ -x "$root/build/bin/echokv-bench" ] || { echo "bench-versions: build/ missing (scripts/build.sh)" >&2; exit 1; }
[ -x "$root/build-debian13/bin/echokv-bench" ] || { echo "bench-versions: build-debian13/ missing (scripts/test-debian13.sh)" >&2; exit 1; }
rel="${out#"$root"/}"

run_side() {  # run_side 1.13|2.6 NAME ARGS...
  local side=$1 name=$2; shift 2
  local file="$rel/$name-torch$side.json"
  echo "bench-versions: torch $side $name" >&2
  if [ "$side" = 1.13 ]; then
    (cd "$root" && build/bin/echokv-bench "$@" --out "$file" >/dev/null)
  else
    "$root/scripts/debian13.sh" build-debian13/bin/echokv-bench "$@" --out "$file" >/dev/null
  fi
}

model=(model --layers 4 --hidden 1024 --heads 16 --kv-heads 4 --intermediate 2816 --contexts 512,2048 --decode-steps 8)
echo_decode=(echo-decode --layers 4 --contexts 1024,4096 --ratios 0.5 --decode-steps 8)
train=(train-step --config configs/testbed/tb8.yaml --lengths 256,1024 --reps 2)
for rep in $(seq 1 "$reps"); do
  for side in 1.13 2.6; do
    for dtype in float32 bfloat16; do
      run_side "$side" "model-$dtype-$rep" "${model[@]}" --dtype "$dtype"
      run_side "$side" "echo-decode-$dtype-$rep" "${echo_decode[@]}" --dtype "$dtype"
    done
    run_side "$side" "train-step-float32-$rep" "${train[@]}"
  done
done
echo "bench-versions: results in $out"
