#!/usr/bin/env bash
# The GPU check, as one command on a CUDA machine that has python3 with a pip torch (CUDA),
# cmake, ninja and nvcc, and can install nothing. Everything else comes from gpu-bundle/
# (scripts/gpu-bundle.sh, made beforehand on a Debian machine and carried along).
#   1. builds the project against the LibTorch inside the pip torch (build-gpu/);
#   2. runs the test suite with ECHOKV_TEST_DEVICES=cpu,cuda;
#   3. runs echokv-bench model and echo-decode on CUDA in bfloat16;
# and writes everything to $OUT (default: benchmarks/results/gpu-<date>/): build and test
# logs, gpu-model.json, gpu-echo-decode.json, summary.json. Each step is timed; a failing
# step is recorded and the later steps still run, so one run yields all it can.
# ECHOKV_TORCH_DIR=PATH uses that LibTorch instead of python3's torch; ECHOKV_TEST_DEVICES
# overrides cpu,cuda; ECHOKV_GPU_SKIP_BENCH=1 leaves the benches out (checking the script on a
# machine without a GPU); ECHOKV_GPU_TARGETS="a b" builds only those targets (no tests,
# no benches). ECHOKV_GPU_QUICK=1 shortens the benches (smaller contexts) when device time is short.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="${ECHOKV_BUNDLE:-$root/gpu-bundle}"
out="${OUT:-$root/benchmarks/results/gpu-$(date -u +%Y%m%d)}"
build="${ECHOKV_BUILD_DIR:-$root/build-gpu}"
mkdir -p "$out"
log() { echo "gpu-check: $*" | tee -a "$out/gpu-check.log"; }
die() { log "error: $*"; exit 1; }

[ -d "$bundle/usr/include" ] || die "no bundle at $bundle (run scripts/gpu-bundle.sh on a Debian machine first)"
if [ -n "${ECHOKV_TORCH_DIR:-}" ]; then  # a LibTorch given by path (how this script is checked without a GPU)
  torch_prefix="$ECHOKV_TORCH_DIR"
  torch_lib=""
  echo "torch from ECHOKV_TORCH_DIR=$ECHOKV_TORCH_DIR" >"$out/torch.txt"
else
  python3 -c 'import torch' 2>/dev/null || die "python3 cannot import torch (or set ECHOKV_TORCH_DIR)"
  torch_prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  torch_lib="$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
    "devices", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])' 2>&1 | tee "$out/torch.txt"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/nvidia-smi.csv" 2>&1 || true

arch=usr/lib/x86_64-linux-gnu
export CMAKE_PREFIX_PATH="$bundle/usr:$bundle/$arch/cmake${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PKG_CONFIG_SYSROOT_DIR="$bundle"
export PKG_CONFIG_LIBDIR="$bundle/$arch/pkgconfig:$bundle/usr/share/pkgconfig"
export PATH="$bundle/usr/bin:$PATH"
ln -sf pkgconf "$bundle/usr/bin/pkg-config" 2>/dev/null || true
libpath="$bundle/$arch${torch_lib:+:$torch_lib}"
# The bundle's libstdc++ only where the machine's is older than the bundle's (compared by the
# newest GLIBCXX symbol version each provides).
glibcxx_max() { strings "$1" 2>/dev/null | grep -E '^GLIBCXX_3\.4\.[0-9]+$' | sort -V | tail -n1 || true; }
bundle_max="$(glibcxx_max "$bundle/$arch/echokv-libstdcxx/libstdc++.so.6")"
have_lib="$( (/sbin/ldconfig -p || ldconfig -p) 2>/dev/null | grep -m1 'libstdc++.so.6 ' | sed 's/.*=> //' || true)"
have_max="$( [ -n "$have_lib" ] && glibcxx_max "$have_lib" || true)"
if [ -n "$bundle_max" ] && [ -n "$have_max" ] &&
   [ "$(printf '%s\n%s\n' "$have_max" "$bundle_max" | sort -V | tail -n1)" != "$have_max" ]; then
  log "system libstdc++ ($have_max) is older than the bundle's ($bundle_max): using the bundle's"
  libpath="$bundle/$arch/echokv-libstdcxx:$libpath"
fi
export LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ECHOKV_DATA_ROOT="$bundle"   # the testbed corpus's dictionaries
export CUDA_HOME="${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")}"
jobs="$(nproc)"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

declare -A status seconds
step() {  # step NAME COMMAND...: runs, logs to $out/NAME.log, records status and seconds
  local name=$1; shift
  local t0; t0=$(date +%s)
  log "$name: $*"
  "$@" >"$out/$name.log" 2>&1
  status[$name]=$?
  seconds[$name]=$(( $(date +%s) - t0 ))
  log "$name: exit ${status[$name]} in ${seconds[$name]} s (log $out/$name.log)"
  tail -n 5 "$out/$name.log"
  return "${status[$name]}"
}

step configure cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DECHOKV_TORCH_DIR="$torch_prefix" -DCMAKE_CUDA_COMPILER="$(command -v nvcc || true)" &&
step build cmake --build "$build" -j "$jobs" ${ECHOKV_GPU_TARGETS:+--target $ECHOKV_GPU_TARGETS}
built=$?
if [ $built -eq 0 ] && [ -n "${ECHOKV_GPU_TARGETS:-}" ]; then
  log "built only $ECHOKV_GPU_TARGETS (ECHOKV_GPU_TARGETS): tests and benches left out"
  built=2
fi
bin="$build/bin"
if [ $built -eq 0 ]; then
  "$bin/echokv-bench" --version >"$out/version.txt" 2>&1
  ECHOKV_TEST_DEVICES="${ECHOKV_TEST_DEVICES:-cpu,cuda}" ECHOKV_THREADS=2 step tests ctest --test-dir "$build" --output-on-failure -j "$jobs" \
    --timeout 600
  if [ "${ECHOKV_GPU_SKIP_BENCH:-0}" = 1 ]; then
    log "benches skipped (ECHOKV_GPU_SKIP_BENCH=1)"
  else
  if [ "${ECHOKV_GPU_QUICK:-0}" = 1 ]; then
    model_ctx=2048,8192; echo_ctx=4096,16384
  else
    model_ctx=2048,8192,32768; echo_ctx=4096,16384,32768
  fi
  # A Llama-3-8B-shaped model: 32 layers x 4096 hidden, 32 heads / 8 KV heads, MLP 14336.
  step bench-model "$bin/echokv-bench" model --device cuda --dtype bfloat16 --layers 32 --hidden 4096 --heads 32 \
    --kv-heads 8 --intermediate 14336 --vocab 128256 --contexts "$model_ctx" --decode-steps 32 --prefill-chunk 2048 \
    --out "$out/gpu-model.json"
  step bench-echo-decode "$bin/echokv-bench" echo-decode --device cuda --dtype bfloat16 --contexts "$echo_ctx" \
    --decode-steps 16 --prefill-chunk 2048 --out "$out/gpu-echo-decode.json"
  fi
fi

{
  echo "{"
  echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo "  \"commit\": \"$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)\","
  echo "  \"torch\": \"$(head -n1 "$out/torch.txt" | sed 's/"/\\"/g')\","
  first=1
  echo "  \"steps\": {"
  for name in configure build tests bench-model bench-echo-decode; do
    [ -n "${status[$name]+x}" ] || continue
    [ $first -eq 1 ] || echo ","
    first=0
    printf '    "%s": {"exit": %s, "seconds": %s}' "$name" "${status[$name]}" "${seconds[$name]}"
  done
  echo ""
  echo "  }"
  echo "}"
} >"$out/summary.json"
log "results in $out (summary.json, gpu-model.json, gpu-echo-decode.json, logs)"
for name in configure build tests bench-model bench-echo-decode; do
  [ -z "${status[$name]+x}" ] || [ "${status[$name]}" -eq 0 ] || exit 1
done
[ "$built" -eq 0 ] || { [ "$built" -eq 2 ] && [ "${status[build]}" -eq 0 ]; }
