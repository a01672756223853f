#!/usr/bin/env bash
# Re-runs the shipped evaluation configs whose results live in docs/results/ and copies each
# run's report.md, metrics.json and figures there. Trains the EchoKV reconstructors they need
# first (each training and evaluation resumes where an interrupted run stopped).
#   scripts/refresh-results.sh [testbed-r0.5 testbed-baselines stories260k-r0.5 stories260k-baselines]
# Needs a build (scripts/build.sh). Hours on 2 cores: the testbed baselines dominate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=build/bin
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(testbed-r0.5 testbed-baselines stories260k-r0.5 stories260k-baselines)

train() {  # config name under configs/echo; a finished training resumes at its end (no work)
  local cfg="configs/echo/$1.yaml"
  echo "[refresh] training $cfg"
  "$bin/echokv-train" echo --config "$cfg"
}

evaluate() {  # eval config name, result folder name
  local cfg="configs/eval/$1.yaml" dest="docs/results/$2" out
  # out_dir is relative to the config's folder (configs/README.md)
  out=$(realpath -m --relative-to=. "$(dirname "$cfg")/$(sed -n 's/^out_dir: *//p' "$cfg")")
  echo "[refresh] evaluating $cfg"
  "$bin/echokv-eval" --config "$cfg"
  mkdir -p "$dest"
  cp "$out/report.md" "$out/metrics.json" "$dest/"
  find "$out" -maxdepth 1 -name '*.svg' -exec cp {} "$dest/" \;
  echo "[refresh] $dest <- $out"
}

for t in "${targets[@]}"; do
  case "$t" in
    testbed-r0.5) train testbed-r0.5; evaluate testbed testbed-r0.5 ;;
    testbed-baselines)
      for c in testbed-r0.7 testbed-r0.5 testbed-r0.3 testbed-hybrid-v0.5; do train "$c"; done
      evaluate testbed-baselines testbed-baselines ;;
    stories260k-r0.5) train stories260k-r0.5-lsinit; evaluate stories260k stories260k-r0.5 ;;
    stories260k-baselines) train stories260k-r0.5-lsinit; evaluate stories260k-baselines stories260k-baselines ;;
    *) echo "refresh-results: unknown target '$t'" >&2; exit 2 ;;
  esac
done
echo "[refresh] done: results in docs/results/"
