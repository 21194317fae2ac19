#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs a command in a Debian 13 (trixie) root beside this machine, with this source tree inside.
#   tests/debian13.sh                       tests/run-tests.sh in Debian 13 (installs its packages there)
#   tests/debian13.sh tests/run-tests.sh -LE boot
#   tests/debian13.sh bash                  a shell in it
# The root is made once with mmdebstrap from the mirror this machine's apt uses and kept under
# DEBIAN13_ROOT (default /var/cache/crypt-agent-ci/trixie, outside the checkout: packages that
# setup-debian.sh installs there stay for the next run). Delete it to start from a fresh Debian 13.
# It is entered with pivot_root in a private mount namespace, not chroot: inside a chroot the
# kernel refuses unshare -U and mount propagation changes, which the tests use.
# Environment: BUILD_DIR (default SOURCE/build-debian13, so the Debian 12 build stays apart).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${DEBIAN13_ROOT:-/var/cache/crypt-agent-ci/trixie}
[ $# -eq 0 ] && set -- tests/run-tests.sh
if [ "$(id -u)" != 0 ]; then
  echo "debian13.sh: run as root (mmdebstrap, mount namespaces)" >&2; exit 1
fi

make_root() {
  local mirror; mirror=$("$SRC/tests/apt-mirror.sh" | head -n 1)
  if [ -z "$mirror" ]; then
    echo "debian13.sh: found no mirror for this release in /etc/apt/sources.list{,.d}" >&2; exit 1
  fi
  command -v mmdebstrap >/dev/null || "$SRC/tests/setup-debian.sh" boot
  echo "debian13.sh: making the Debian 13 root in $ROOT from $mirror (a few minutes, once)"
  rm -rf "$ROOT.new"
  mmdebstrap --mode=root --variant=minbase --include=apt,ca-certificates,systemd,keyutils \
    trixie "$ROOT.new" "$mirror"
  rm -rf "$ROOT"
  mv "$ROOT.new" "$ROOT"
}

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9   # one maker at a time; users of a finished root only wait for that
[ -x "$ROOT/usr/bin/apt-get" ] && [ -e "$ROOT/etc/os-release" ] || make_root
exec 9>&-
echo "debian13.sh: in $(. "$ROOT/etc/os-release" && echo "$PRETTY_NAME") at $ROOT: $*"

# The namespace's own mounts: the root bound onto itself (pivot_root needs a mount point),
# the kernel's file systems, fresh /run (with /run/systemd, where the tests mount their private
# ask directories) and /tmp, the host's name resolution for apt, and this tree at the same path.
export DEBIAN13_ROOT_DIR=$ROOT DEBIAN13_SRC=$SRC
export BUILD_DIR=${BUILD_DIR:-$SRC/build-debian13}
exec unshare -m --propagation private -- /bin/bash -euo pipefail -c '
  R=$DEBIAN13_ROOT_DIR S=$DEBIAN13_SRC
  mount --bind "$R" "$R"
  mount -t proc proc "$R/proc"
  mount --rbind /sys "$R/sys"
  mount --rbind /dev "$R/dev"
  mount -t tmpfs -o mode=0755 tmpfs "$R/run"
  mkdir -p "$R/run/systemd" "$R/run/lock"
  mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
  cp -L /etc/resolv.conf "$R/run/resolv.conf.host" 2>/dev/null && {
    [ -e "$R/etc/resolv.conf" ] || : > "$R/etc/resolv.conf"
    mount --bind "$R/run/resolv.conf.host" "$R/etc/resolv.conf"; }
  mkdir -p "$R$S"
  mount --rbind "$S" "$R$S"
  mkdir -p "$R/.oldroot"
  cd "$R"
  pivot_root . .oldroot
  umount -l /.oldroot
  cd "$S"
  unset DEBIAN13_ROOT_DIR DEBIAN13_SRC
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  # This root never boots: installing a kernel here need not build its initramfs (the
  # boot tests build their own). Saves dracut two runs on the first install.
  export INITRD=No
  # Only stdin, stdout and stderr go in: mmdebstrap hands apt a pipe as "cat >&FD" for dash,
  # which takes one digit only, so a descriptor inherited from the caller that pushes the
  # pipe to 10 or above fails the mmdebstrap of the boot tests ("Bad fd number").
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true
  done
  exec "$@"' debian13 "$@"
