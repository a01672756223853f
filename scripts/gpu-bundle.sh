#!/usr/bin/env bash
# Prepares gpu-bundle/ (ignored by git): what scripts/gpu-check.sh needs on a CUDA machine
# that has python3 + a pip torch, cmake, ninja and nvcc but can install nothing. From this
# machine's Debian packages (apt-get download + dpkg -x), headers, CMake/pkg-config files and
# shared libraries only:
#   yaml-cpp, spdlog + fmt, CLI11, nlohmann-json, PCRE2, GoogleTest/GoogleMock, Google
#   Benchmark, SentencePiece (for the torch-free echokv-spm helper), pkgconf (CMake's
#   pkg_check_modules needs the executable), libstdc++ (used only where the machine's is
#   older than this one's), and the testbed corpus's dictionary packages at their pinned
#   versions (ECHOKV_DATA_ROOT points the corpus there).
#   scripts/gpu-bundle.sh [OUT_DIR]     (default: gpu-bundle/)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/gpu-bundle}"
arch_dir=usr/lib/x86_64-linux-gnu

PACKAGES=(
  libyaml-cpp-dev libyaml-cpp0.7 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
  libcli11-dev nlohmann-json3-dev libpcre2-dev libpcre2-8-0
  libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian
  libsentencepiece-dev libsentencepiece0 pkgconf-bin libpkgconf3 libstdc++6
)
# The corpus pins, read from install-deps.sh (one list of versions).
mapfile -t CORPUS < <(sed -n '/^CORPUS_PACKAGES=(/,/^)/p' "$root/scripts/install-deps.sh" | grep -oE '[a-z0-9.+-]+=[^ )]+')
[ ${#CORPUS[@]} -gt 0 ] || { echo "gpu-bundle: error: no CORPUS_PACKAGES in scripts/install-deps.sh" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "gpu-bundle: downloading ${#PACKAGES[@]} + ${#CORPUS[@]} packages"
apt-get download "${PACKAGES[@]}" "${CORPUS[@]}" >/dev/null 2>apt.err || { cat apt.err >&2; exit 1; }
stage="$work/stage"
mkdir -p "$stage"
for deb in ./*.deb; do dpkg -x "$deb" "$stage"; done

# Keep headers, CMake/pkg-config files, shared libraries and their links, the static GoogleTest
# archives, pkgconf, and the dictionary data; nothing else (docs, man pages).
tmp_out="$out.partial"
rm -rf "$tmp_out"
mkdir -p "$tmp_out/usr/bin" "$tmp_out/$arch_dir/echokv-libstdcxx"
cp -a "$stage/usr/include" "$tmp_out/usr/"
cp -a "$stage/usr/share/cmake" "$tmp_out/usr/share-cmake.tmp" 2>/dev/null || true
mkdir -p "$tmp_out/usr/share"
[ -d "$tmp_out/usr/share-cmake.tmp" ] && mv "$tmp_out/usr/share-cmake.tmp" "$tmp_out/usr/share/cmake"
[ -d "$stage/usr/share/pkgconfig" ] && cp -a "$stage/usr/share/pkgconfig" "$tmp_out/usr/share/"
for d in cmake pkgconfig; do cp -a "$stage/$arch_dir/$d" "$tmp_out/$arch_dir/"; done
find "$stage/$arch_dir" -maxdepth 1 \( -name '*.so' -o -name '*.so.*' -o -name 'libgtest*.a' -o -name 'libgmock*.a' \
  -o -name 'libbenchmark*.a' \) ! -name 'libstdc++*' -exec cp -a {} "$tmp_out/$arch_dir/" \;
cp -a "$stage/$arch_dir"/libstdc++.so.6* "$tmp_out/$arch_dir/echokv-libstdcxx/"
cp -a "$stage/usr/bin/pkgconf" "$tmp_out/usr/bin/"
mkdir -p "$tmp_out/usr/share/dictd" "$tmp_out/usr/share/games"
cp -a "$stage/usr/share/dictd/." "$tmp_out/usr/share/dictd/"
cp -a "$stage/usr/share/games/fortunes" "$tmp_out/usr/share/games/"
# Package list with versions, for the record.
for deb in ./*.deb; do dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb"; done | sort >"$tmp_out/PACKAGES.txt"
rm -rf "$out"
mv "$tmp_out" "$out"
size=$(du -sm "$out" | cut -f1)
echo "gpu-bundle: $out ($size MiB, $(wc -l <"$out/PACKAGES.txt") packages)"
[ "$size" -lt 60 ] || { echo "gpu-bundle: error: bundle is $size MiB, over the 60 MiB budget" >&2; exit 1; }
