#!/usr/bin/env bash
# Installs the Debian bookworm packages EchoKV-cpp needs. Idempotent: apt-get runs only
# when a package is missing.
set -euo pipefail

PACKAGES=(
  cmake g++ make pkg-config
  libtorch-dev libopenblas0-pthread
  libsentencepiece-dev sentencepiece
  libcli11-dev libyaml-cpp-dev libspdlog-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev
  # English text for the testbed model's corpus (echokv-train pretrain)
  dict-gcide dict-wn dict-foldoc dict-jargon fortunes
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
