#!/usr/bin/env bash
# The main job: set up (dependencies, build) and run the toolkit on the default model:
#   1. greedy continuation of BOS (448 tokens) with the full cache;
#   2. head-similarity analysis (report, metrics, paper vs similarity plans) -> runs/analysis/;
#   3. EchoKV reconstructor training, stage 1 then stage 2 (resumable) -> runs/echo/;
#   4. the same greedy continuation with the EchoKV cache, and its stored bytes;
#   5. evaluation (configs/eval): full vs EchoKV (vs KVzip and Palu-style low rank on the testbed) ->
#      runs/main/eval/report.md (RULER-lite, NIAH, fidelity on the testbed; fidelity on
#      stories260K).
# Steps 2-5 run for models with shipped configs (configs/analysis, configs/echo, configs/eval).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
cd "$root"
bin="${ECHOKV_BUILD_DIR:-$root/build}/bin"
shared="${ECHOKV_SHARED:-$root/../shared}"
# Default model: the project's own testbed model once it ships (data/models/), else
# stories260K from ../shared.
model="${ECHOKV_MODEL:-}"
if [ -z "$model" ]; then
  for candidate in "$root"/data/models/*/ "$shared/fixtures/reference/stories260K"; do
    if [ -f "$candidate/config.json" ]; then model="${candidate%/}"; break; fi
  done
fi
[ -n "$model" ] || { echo "run.sh: no default model found (set ECHOKV_MODEL)" >&2; exit 1; }
name="$(basename "$model")"
echo "== model: $model"
echo "== greedy continuation of BOS (448 tokens), full cache"
"$bin/echokv-eval" generate --model "$model" --ids 1 --max-new-tokens 448 --greedy

analysis_cfg=""; echo_cfg=""; echo_dir=""; eval_cfg=""
case "$name" in
  stories260K) analysis_cfg=configs/analysis/stories260k.yaml
               echo_cfg=configs/echo/stories260k-r0.5-lsinit.yaml; echo_dir=runs/echo/stories260k-r0.5-lsinit
               eval_cfg=configs/eval/stories260k.yaml ;;
  echokv-testbed-8l) analysis_cfg=configs/analysis/testbed.yaml
               echo_cfg=configs/echo/testbed-r0.5-quick.yaml; echo_dir=runs/echo/testbed-r0.5-quick
               eval_cfg=configs/eval/testbed-main.yaml ;;
esac
# The shipped configs name their model by path; a model given by ECHOKV_MODEL elsewhere
# only gets step 1.
if [ -n "$analysis_cfg" ] && grep -q "^model: .*$name\$" "$analysis_cfg"; then
  echo "== head-similarity analysis -> runs/analysis/$name/report.md"
  "$bin/echokv-analyze" run --config "$analysis_cfg" --out "runs/analysis/$name"
  echo "== EchoKV reconstructors, two stages -> $echo_dir/summary.md"
  "$bin/echokv-train" echo --config "$echo_cfg"
  echo "== greedy continuation of BOS (448 tokens: past the 4 + 128 uncompressed ones), EchoKV cache"
  "$bin/echokv-eval" generate --model "$model" --ids 1 --max-new-tokens 448 --greedy --cache echo \
    --echo "$echo_dir"
  echo "== evaluation ($eval_cfg) -> $(realpath -m --relative-to=. "$(dirname "$eval_cfg")/$(sed -n 's/^out_dir: //p' "$eval_cfg")")/report.md"
  "$bin/echokv-eval" --config "$eval_cfg"
fi
echo "== done: model $model"
[ -n "$eval_cfg" ] && grep -q "^model: .*$name\$" "$analysis_cfg" &&
  echo "== results: $(realpath -m --relative-to=. "$(dirname "$eval_cfg")/$(sed -n 's/^out_dir: //p' "$eval_cfg")")/report.md, runs/analysis/$name/report.md, $echo_dir/summary.md"
exit 0
