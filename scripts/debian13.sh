#!/usr/bin/env bash
# Runs a command inside a Debian 13 ("trixie") root with this repository at /src/echokv and
# ../shared at /src/shared (read-only). The root is made once with debootstrap and reused:
#   scripts/debian13.sh [COMMAND...]      (default: an interactive shell)
# ECHOKV_DEBIAN13_ROOT chooses where the root lives (default /var/cache/echokv/debian13-root).
# Mounts live in a private mount namespace, so nothing stays mounted if the script is killed.
# Needs root (debootstrap, chroot, mount namespaces).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${ECHOKV_SHARED:-$repo/../shared}"
target="${ECHOKV_DEBIAN13_ROOT:-/var/cache/echokv/debian13-root}"

die() { echo "debian13: error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and mount namespaces)"
[ -d "$shared" ] || die "shared folder not found: $shared (set ECHOKV_SHARED)"

if [ ! -f "$target/.echokv-root-complete" ]; then
  if ! command -v debootstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  partial="$target.partial"
  rm -rf "$partial"
  mkdir -p "$(dirname "$target")"
  echo "debian13: debootstrap --variant=minbase trixie $target (about a minute)"
  started=$(date +%s)
  debootstrap --variant=minbase trixie "$partial" >"$(dirname "$target")/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $(dirname "$target")/debootstrap.log"
  rm -rf "$target"
  mv "$partial" "$target"
  touch "$target/.echokv-root-complete"
  echo "debian13: root ready in $(( $(date +%s) - started )) s"
fi
cp -L /etc/resolv.conf "$target/etc/resolv.conf"
# The root has no git: benchmark JSON gets the commit from here.
export ECHOKV_COMMIT="${ECHOKV_COMMIT:-$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || true)}"
mkdir -p "$target/src/echokv" "$target/src/shared"

if [ $# -eq 0 ]; then set -- bash; fi
# The inner script gets the command as its arguments.
exec unshare --mount --propagation private bash -c '
  set -euo pipefail
  target=$1 repo=$2 shared=$3; shift 3
  mount --rbind /dev "$target/dev"
  mount -t proc proc "$target/proc"
  mount --rbind /sys "$target/sys"
  mount --bind "$repo" "$target/src/echokv"
  mount --bind "$shared" "$target/src/shared"
  mount -o remount,bind,ro "$target/src/shared"
  exec chroot "$target" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    ECHOKV_JOBS="${ECHOKV_JOBS:-}" ECHOKV_THREADS="${ECHOKV_THREADS:-}" CI="${CI:-}" \
    ECHOKV_COMMIT="${ECHOKV_COMMIT:-}" \
    bash -c "cd /src/echokv && exec \"\$@\"" bash "$@"
' bash "$target" "$repo" "$shared" "$@"
