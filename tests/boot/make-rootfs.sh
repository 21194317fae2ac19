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
for tree in "$STAGE" "$BOOT_SRC/rootfs-overlay"; do
    tar -C "$tree" -c . | tar -C "$ROOT" -x --keep-directory-symlink
done
echo boot-test > "$ROOT/etc/hostname"

# The data disks, by UUID. nofail + a short device timeout for "wrong":
# it is attached only in the wrong-key scenario; the password timeout bounds
# how long a boot may wait for a passphrase nobody will type.
{
    echo "data1 UUID=$(cryptsetup luksUUID data1.img) none luks"
    echo "data2 UUID=$(cryptsetup luksUUID data2.img) none luks"
    echo "wrong UUID=$(cryptsetup luksUUID wrong.img) none luks,nofail,x-systemd.device-timeout=3s,timeout=30s"
} > "$ROOT/etc/crypttab"

# The secrets this boot uses, so the guest can check its own journal for them.
install -d -m 700 "$ROOT/etc/test-boot/secrets"
install -m 600 "$BOOT_WORK"/secrets/* "$ROOT/etc/test-boot/secrets/"
[ -f "$STAGE/etc/crypt-agent.conf" ] || rm -f "$ROOT/etc/crypt-agent.conf"

systemctl --root="$ROOT" enable crypt-agent.path crypt-agent-finish.service test-boot-report.service test-boot-diagnose.service
# No login prompt on the serial console: it would only add noise to the log.
systemctl --root="$ROOT" mask serial-getty@ttyS0.service getty@tty1.service

rm -f root.img; truncate -s 560M root.img
mkfs.ext4 -q -F -L bootroot -d "$ROOT" root.img 512M
cryptsetup reencrypt -q --encrypt --type luks2 --reduce-device-size 32M \
    --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$(secret_file typed)" root.img
log "root.img LUKS2 UUID=$(cryptsetup luksUUID root.img) ($(du -sh "$ROOT" | cut -f1) of files)"
