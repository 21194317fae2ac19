#!/bin/bash
# SPDX-License-Identifier: MIT
# The real root of the boot tests: this machine's Debian release (bookworm, or trixie when run
# in tests/debian13.sh's root), minbase + systemd, with
# the project installed from the staging tree, in a LUKS2 image (root.img)
# whose only passphrase is the one the stand-in person types.
#
# mmdebstrap's output is cached as base-<hash>.tar, keyed by its package list;
# the project, the overlay and the encryption are redone every time (the
# binary changes; the base does not).
source "$(dirname "$0")/lib.sh"
require_boot_tools
require_agent_binary
STAGE=$BOOT_WORK/stage
[ -x "$STAGE/usr/sbin/crypt-agent" ] || die "run stage.sh first ($STAGE has no crypt-agent)"
cd "$BOOT_WORK"

# The Debian packages that provide the libraries crypt-agent links, found
# from this machine's own installation of them.
# (merged /usr: dpkg may know a library under /lib or /usr/lib, by either name)
package_of() {
    local real p
    real=$(readlink -f "$1")
    for p in "$1" "$real" "/usr${1#/usr}" "${1#/usr}" "/usr${real#/usr}" "${real#/usr}"; do
        dpkg -S "$p" 2>/dev/null && return 0
    done
    die "no Debian package provides $1"
}
runtime_packages() {
    ldd "$STAGE/usr/sbin/crypt-agent" | awk '/=> \//{print $3}' | while read -r lib; do
        package_of "$lib"
    done | cut -d: -f1 | sort -u
}
PACKAGES="systemd-sysv udev kmod keyutils pcscd vsmartcard-vpcd $(runtime_packages | tr '\n' ' ')"
# Debian 13 splits systemd-cryptsetup (the generator and the service that ask for crypttab's
# volumes) out of systemd; on Debian 12 it is part of systemd.
if apt-cache show --no-all-versions systemd-cryptsetup >/dev/null 2>&1; then
    PACKAGES="$PACKAGES systemd-cryptsetup"
fi
SUITE=$(. /etc/os-release && echo "$VERSION_CODENAME")
log "root packages: $PACKAGES"
BASE=base-$(echo "$SUITE $PACKAGES" | tr ' ' '\n' | sort | sha256sum | cut -c1-12).tar
if [ ! -s "$BASE" ]; then
    MIRROR=$("$BOOT_SRC/../apt-mirror.sh" | head -n 1)
    log "mmdebstrap $SUITE into $BASE (mirror ${MIRROR:-default})"
    rm -f base-*.tar
    mmdebstrap --mode=root --variant=minbase --include="${PACKAGES// /,}" \
        "$SUITE" "$BASE.tmp.tar" ${MIRROR:+"$MIRROR"}
    mv "$BASE.tmp.tar" "$BASE"
fi

ROOT=$BOOT_WORK/rootfs
rm -rf "$ROOT"; mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$BASE"
# tar, not cp: the root has merged /usr (/lib -> usr/lib), the stage may not.
tar -C "$STAGE" -c . | tar -C "$ROOT" -x --keep-directory-symlink
write_crypttab "$ROOT"
add_test_root_overlay "$ROOT"
[ -f "$STAGE/etc/crypt-agent.conf" ] || rm -f "$ROOT/etc/crypt-agent.conf"
systemctl --root="$ROOT" enable crypt-agent.path crypt-agent-finish.service
encrypt_root_image "$ROOT" root.img
