#!/usr/bin/env bash
# ctest: installs the build tree under a temporary prefix, builds tests/install/consumer
# against it with find_package(EchoKV), runs it and the installed echokv-eval --version.
#   test_consumer.sh BUILD_DIR CONSUMER_SOURCE [TORCH_DIR]
set -euo pipefail
build=$1 consumer=$2 torch_dir=${3:-}
prefix="$(mktemp -d "${TMPDIR:-/tmp}/echokv-install-XXXXXX")"
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >"$prefix.log" 2>&1 || { cat "$prefix.log"; exit 1; }
rm -f "$prefix.log"
test -f "$prefix/lib/cmake/EchoKV/EchoKVConfig.cmake" || { echo "no package config installed"; exit 1; }
test -f "$prefix/include/echokv/core/torch_compat.h" || { echo "headers not installed"; exit 1; }
"$prefix/bin/echokv-eval" --version
args=(-S "$consumer" -B "$prefix/consumer-build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix")
if [ -n "$torch_dir" ]; then args+=(-DECHOKV_TORCH_DIR="$torch_dir"); fi
cmake "${args[@]}" >/dev/null
cmake --build "$prefix/consumer-build" -j 1 >/dev/null
"$prefix/consumer-build/consumer"
