#!/bin/bash
# SPDX-License-Identifier: MIT
# boot.package-typed-once: the typed-once boot (run-scenario.py typed-once-fakeclock) made
# from what the Debian package installs, not from the build tree:
#   - a real root of this machine's release (mmdebstrap, minbase + systemd, udev, dracut,
#     cryptsetup and the package's dependencies; cached as base-pkg-<hash>.tar), into which
#     `apt-get install ./crypt-agent_*.deb` (package.build's .deb) installs the package;
#     its maintainer scripts enable the units (this script enables none of them, it checks
#     that they are enabled);
#   - the initramfs built by that root's dracut, inside the root (chroot in a private mount
#     namespace), from the module the package installed in /usr/lib/dracut/modules.d and
#     /usr/sbin/crypt-agent; only this machine's kernel modules come in (bound read-only);
#   - the boot: one passphrase typed in the initramfs opens the root, data1 and data2 open in
#     the real root with no input, and the agent that answered them is /usr/sbin/crypt-agent
#     of the installed package (dpkg owns it and verifies its checksum in the guest).
# Its own work directory ($BOOT_WORK/package-boot): its disks must not replace the ones whose
# UUIDs the other scenarios' root lists. Exits 77 without the .deb (package.build makes it).
#   CRYPT_AGENT_PACKAGE_DIR  where package.build kept the .deb (default BUILD_DIR/package)
source "$(dirname "$0")/lib.sh"
require_boot_tools
PKG_DIR=${CRYPT_AGENT_PACKAGE_DIR:-$CRYPT_AGENT_BUILD_DIR/package}
DEB=$(ls "$PKG_DIR"/crypt-agent_*.deb 2>/dev/null | head -n 1)
[ -n "$DEB" ] || skip "no crypt-agent_*.deb in $PKG_DIR (package.build makes it)"
command -v readelf >/dev/null || skip "readelf (binutils) is missing"
BOOT_WORK=$BOOT_WORK/package-boot
export CRYPT_AGENT_BOOT_WORK=$BOOT_WORK
mkdir -p "$BOOT_WORK"; cd "$BOOT_WORK"
T0=$SECONDS
log "package: $DEB ($(dpkg-deb -f "$DEB" Version))"

"$BOOT_SRC/make-disks.sh"

# The base: what the guest needs to boot and to build its initramfs, plus the package's
# dependencies (of each, the first alternative this release has), so that installing the
# .deb needs no network.
deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | while read -r group; do
    for alt in $(sed 's/([^)]*)//g; s/|/ /g' <<< "$group"); do
        if apt-cache show --no-all-versions "$alt" >/dev/null 2>&1; then echo "$alt"; break; fi
    done
done | sort -u)
PACKAGES="systemd-sysv udev kmod keyutils cryptsetup-bin dracut zstd $(echo $deps)"
# Debian 13 splits systemd-cryptsetup out of systemd (see make-rootfs.sh).
if apt-cache show --no-all-versions systemd-cryptsetup >/dev/null 2>&1; then
    PACKAGES="$PACKAGES systemd-cryptsetup"
fi
PACKAGES=$(tr ' ' '\n' <<< "$PACKAGES" | sort -u | tr '\n' ' ')
SUITE=$(. /etc/os-release && echo "$VERSION_CODENAME")
MIRROR=$("$BOOT_SRC/../apt-mirror.sh" | head -n 1)
BASE=base-pkg-$(echo "$SUITE $MIRROR $PACKAGES" | tr ' ' '\n' | sort | sha256sum | cut -c1-12).tar
if [ ! -s "$BASE" ]; then
    log "mmdebstrap $SUITE into $BASE (mirror ${MIRROR:-default}): $PACKAGES"
    rm -f base-pkg-*.tar
    mmdebstrap --quiet --mode=root --variant=minbase --include="${PACKAGES// /,}" \
        "$SUITE" "$BASE.tmp.tar" ${MIRROR:+"$MIRROR"}
    mv "$BASE.tmp.tar" "$BASE"
fi

ROOT=$BOOT_WORK/rootfs
rm -rf "$ROOT" initrd.img; mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$BASE"
cp "$DEB" "$ROOT/root/"
mkdir -p "$ROOT/root/initrd-overlay"; cp -a "$BOOT_SRC/initrd-overlay/." "$ROOT/root/initrd-overlay/"
# What runs in the root, as an administrator would: install the package with apt, check
# what its maintainer scripts enabled, build the initramfs with dracut.
{
    echo '#!/bin/bash'
    echo 'set -euo pipefail'
    declare -f boot_dracut
    cat <<INSIDE
KVER=$KVER DRIVERS="$BOOT_DRIVERS" INSTALL="$BOOT_INSTALL"
INSIDE
    cat <<'INSIDE'
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin
cd /root
echo "# apt-get install ./$(ls crypt-agent_*.deb)"
apt-get install -y --no-install-recommends ./crypt-agent_*.deb 2>&1 |
    sed 's/\r$//; s/.*\r//; s/^/  /'
echo "# what the package's maintainer scripts enabled"
for u in crypt-agent.path crypt-agent.service crypt-agent-finish.service; do
    echo "ENABLED $u $(systemctl is-enabled "$u" 2>&1)"
done
echo "DSH $(ls /var/lib/systemd/deb-systemd-helper-enabled | tr '\n' ' ')"
echo "# dracut $(dracut --version 2>/dev/null | head -n 1) in the root, module $(ls -d /usr/lib/dracut/modules.d/*crypt-agent)"
boot_dracut /root/initrd.img "$KVER" /root/initrd-overlay "$DRIVERS" "$INSTALL" 2>/root/dracut.log \
    || { cat /root/dracut.log; exit 1; }
INSIDE
} > "$ROOT/root/inside.sh"
chmod 755 "$ROOT/root/inside.sh"

# No systemd runs in the root (/run is empty), so deb-systemd-invoke starts nothing there.
if ! inside=$(unshare -m --propagation private /bin/bash -c '
    set -e; R=$1 KVER=$2
    mount --bind "$R" "$R"
    mount -t proc proc "$R/proc"; mount -t sysfs sysfs "$R/sys"
    mount --rbind /dev "$R/dev"; mount -t tmpfs -o mode=755 tmpfs "$R/run"; mount -t tmpfs tmpfs "$R/tmp"
    mkdir -p "$R/usr/lib/modules/$KVER"
    mount --bind -o ro "/usr/lib/modules/$KVER" "$R/usr/lib/modules/$KVER"
    exec chroot "$R" /root/inside.sh' _ "$ROOT" "$KVER" 2>&1); then
    echo "$inside"; die "installing the package or building the initramfs in the root failed"
fi
echo "$inside"
rmdir "$ROOT/usr/lib/modules/$KVER" "$ROOT/usr/lib/modules" 2>/dev/null || true
mv "$ROOT/root/initrd.img" initrd.img
rm -rf "$ROOT"/root/crypt-agent_*.deb "$ROOT/root/inside.sh" "$ROOT/root/initrd-overlay" "$ROOT/root/dracut.log"

# The checks a user would make before rebooting: the units enabled by the package (and by
# nothing of this test), the image made from the package's files.
fail=0
check() { if eval "$1"; then echo "ok   $2"; else echo "FAIL $2"; fail=1; fi; }
check 'grep -qx "ENABLED crypt-agent.path enabled" <<< "$inside"' "the package enabled crypt-agent.path"
check 'grep -qx "ENABLED crypt-agent-finish.service enabled" <<< "$inside"' "the package enabled crypt-agent-finish.service"
check 'grep -q "^DSH .*crypt-agent.path" <<< "$inside"' "deb-systemd-helper recorded the enablement (postinst)"
contents=$(lsinitrd initrd.img 2>/dev/null)
for f in usr/sbin/crypt-agent usr/lib/systemd/system/crypt-agent.service.d/50-initrd.conf \
         etc/systemd/system/sysinit.target.wants/crypt-agent.path; do
    check 'grep -q " $f\( \|$\)" <<< "$contents"' "the image has $f"
done
check '! grep -q libifdvpcd <<< "$contents"' "the image has no vpcd test driver"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/sbin/crypt-agent > "$T/deb-agent"
lsinitrd -f usr/sbin/crypt-agent initrd.img > "$T/initrd-agent"
build_id() { readelf -n "$1" 2>/dev/null | sed -n 's/.*Build ID: *//p'; }
deb_id=$(build_id "$T/deb-agent"); initrd_id=$(build_id "$T/initrd-agent")
check '[ -n "$deb_id" ] && [ "$deb_id" = "$initrd_id" ]' \
    "the image's crypt-agent is the package's /usr/sbin/crypt-agent (build id ${deb_id:-none} / ${initrd_id:-none})"
if [ -x "$CRYPT_AGENT_BIN" ]; then
    tree_id=$(build_id "$CRYPT_AGENT_BIN")
    check '[ "$tree_id" != "$deb_id" ]' "and not the build tree's $CRYPT_AGENT_BIN (build id ${tree_id:-none})"
fi
[ $fail = 0 ] || die "the package's root or initramfs is not what a user would boot"

write_crypttab "$ROOT"
add_test_root_overlay "$ROOT"
encrypt_root_image "$ROOT" root.img
log "prepared from the package in $((SECONDS - T0)) s: $(ls -sh ./*.img | tr '\n' ' ')"
export BOOT_WORK KERNEL
exec python3 "$BOOT_SRC/run-scenario.py" package-typed-once
