#!/usr/bin/env bash
# Installs the Debian packages EchoKV-cpp needs, on Debian 12 (bookworm: LibTorch 1.13) or
# Debian 13 (trixie: LibTorch 2.6). Idempotent: apt-get runs only when something is missing.
#
# Your own LibTorch (a libtorch download, or the one inside a pip torch:
#   python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'):
#   ECHOKV_TORCH_DIR=/path scripts/install-deps.sh   skips apt's LibTorch (scripts/build.sh
#   then builds against that path). Without apt (another distribution), nothing is installed
#   and the libraries below must come from elsewhere (see README, "Your own LibTorch").
#
# The testbed corpus is built from dictionary packages at the exact versions it was trained
# on (data/training/testbed-8l/corpus-sources.json records versions and content hashes); on
# a release that has other versions, they come from the bookworm suite of the same archive,
# pinned so that nothing else is ever taken from it.
set -euo pipefail

PACKAGES=(
  cmake g++ make pkg-config
  libopenblas0-pthread
  libsentencepiece-dev sentencepiece
  libcli11-dev libyaml-cpp-dev libspdlog-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev
)
# English text for the testbed model's corpus (echokv-train pretrain), pinned. Keep in step
# with data/training/testbed-8l/corpus-sources.json (a test compares the two).
CORPUS_PACKAGES=(
  dict-gcide=0.48.5+nmu2 dict-wn=1:3.0-37 dict-foldoc=20230119-1 dict-jargon=4.4.7-3.1
  fortunes=1:1.99.1-7.3 fortunes-min=1:1.99.1-7.3
)
CORPUS_SUITE=bookworm

if [ -n "${ECHOKV_TORCH_DIR:-}" ]; then
  echo "install-deps: LibTorch from ECHOKV_TORCH_DIR=$ECHOKV_TORCH_DIR (apt's libtorch-dev not needed)"
else
  PACKAGES+=(libtorch-dev)
fi

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "install-deps: no apt here; install by hand: a C++17 compiler, CMake >= 3.18, LibTorch (ECHOKV_TORCH_DIR)," \
       "yaml-cpp, spdlog, CLI11, nlohmann-json, PCRE2, GoogleTest/GoogleMock, Google Benchmark, SentencePiece" >&2
  exit 0
fi

codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
case "$codename" in
  bookworm|trixie) ;;
  *) echo "install-deps: warning: tested on Debian bookworm and trixie, this is '${codename:-unknown}'" >&2 ;;
esac

installed_version() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'; }

missing=()
for p in "${PACKAGES[@]}"; do
  [ -n "$(installed_version "$p")" ] || missing+=("$p")
done
for pv in "${CORPUS_PACKAGES[@]}"; do
  [ "$(installed_version "${pv%%=*}")" = "${pv#*=}" ] || missing+=("$pv")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all $(( ${#PACKAGES[@]} + ${#CORPUS_PACKAGES[@]} )) packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

# The corpus suite, from the archive this machine already uses, at pin priority 1: apt never
# takes a package from it unless asked for that package's version by name.
if [ "$codename" != "$CORPUS_SUITE" ] && [ ! -f /etc/apt/sources.list.d/echokv-corpus.list ]; then
  uri="$(grep -rhoE '(https?|file)://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
         grep -v -- '-security' | head -n1 || true)"
  [ -n "$uri" ] || { echo "install-deps: error: no Debian archive found in /etc/apt/sources.list* for the corpus packages" >&2; exit 1; }
  echo "install-deps: adding the $CORPUS_SUITE suite of $uri for the pinned corpus packages only (priority 1)"
  echo "deb $uri $CORPUS_SUITE main" | $SUDO tee /etc/apt/sources.list.d/echokv-corpus.list >/dev/null
  printf 'Package: *\nPin: release n=%s\nPin-Priority: 1\n' "$CORPUS_SUITE" |
    $SUDO tee /etc/apt/preferences.d/echokv-corpus >/dev/null
fi

echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends --allow-downgrades "${missing[@]}"
