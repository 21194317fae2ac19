# SPDX-License-Identifier: MIT
# Shared by the boot test scripts (sourced, not run).
#
# Layout of the work directory ($BOOT_WORK, kept between runs because the
# Debian base and the disks are slow to build):
#   secrets/     the test passphrases, one file each (never on a command line)
#   stage/       `cmake --install` of the project (DESTDIR), prefix /usr
#   base-*.tar   mmdebstrap output, reused while its package list is unchanged
#   *.img        disks, initrd.img; runs/ has the serial logs
set -euo pipefail

BOOT_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${CRYPT_AGENT_SOURCE_DIR:=$(cd "$BOOT_SRC/../.." && pwd)}"
: "${CRYPT_AGENT_BUILD_DIR:=$CRYPT_AGENT_SOURCE_DIR/build-boot}"
: "${CRYPT_AGENT_BIN:=$CRYPT_AGENT_BUILD_DIR/agent/crypt-agent}"
BOOT_WORK=${CRYPT_AGENT_BOOT_WORK:-$CRYPT_AGENT_BUILD_DIR/boot-work}
KERNEL=${KERNEL:-$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)}
KVER=${KVER:-${KERNEL#/boot/vmlinuz-}}

log() { printf '%s %s\n' "$(date -u +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# CTest reports exit 77 as "skipped": something this test needs is absent.
skip() { echo "SKIP: $*"; exit 77; }

# Every tool the boot tests need, with the Debian package that brings it.
require_boot_tools() {
    [ "$(id -u)" = 0 ] || skip "boot tests need root (mmdebstrap --mode=root, dracut)"
    local t missing=()
    for t in qemu-system-x86_64:qemu-system-x86 dracut:dracut lsinitrd:dracut \
             mmdebstrap:mmdebstrap cryptsetup:cryptsetup-bin mkfs.ext4:e2fsprogs \
             python3:python3 zstd:zstd; do
        command -v "${t%%:*}" >/dev/null || missing+=("${t%%:*} (${t#*:})")
    done
    [ -n "$KERNEL" ] && [ -r "$KERNEL" ] || missing+=("a kernel in /boot (linux-image-amd64)")
    [ -d "/usr/lib/modules/$KVER" ] || missing+=("modules of $KVER in /usr/lib/modules")
    [ ${#missing[@]} = 0 ] || skip "missing: ${missing[*]}"
}

require_agent_binary() {
    [ -x "$CRYPT_AGENT_BIN" ] || skip "crypt-agent binary $CRYPT_AGENT_BIN is not built"
}

# A secret by name: created once with random content, stored 0600.
secret_file() {
    local f="$BOOT_WORK/secrets/$1"
    if [ ! -s "$f" ]; then
        mkdir -p -m 700 "$BOOT_WORK/secrets"
        # Printable, no newline: these are passphrases a person could type.
        (umask 077; head -c 18 /dev/urandom | base64 | tr -d '\n/+=' > "$f")
    fi
    printf '%s' "$f"
}

# The card scenarios also need a PC/SC stack: pcscd and the vpcd driver go
# into the initramfs, the card emulator runs on the host. Prints what is
# missing and fails when something is.
card_tools_present() {
    local missing=()
    command -v pcscd >/dev/null || missing+=("pcscd (pcscd)")
    [ -e /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || missing+=("the vpcd driver (vsmartcard-vpcd)")
    [ -d /usr/lib/python3/site-packages/virtualsmartcard ] || missing+=("virtualsmartcard (python3-virtualsmartcard)")
    /usr/bin/python3 -c 'import Cryptodome' 2>/dev/null || missing+=("Cryptodome (python3-pycryptodome)")
    [ ${#missing[@]} = 0 ] && return 0
    echo "missing for the card scenarios: ${missing[*]}"
    return 1
}

# The CCID scenarios: QEMU's own CCID reader with libcacard's card, and in
# the initramfs pcscd, libccid, p11-kit's proxy and OpenSC. Prints what is
# missing and fails when something is.
ccid_tools_present() {
    local missing=()
    command -v pcscd >/dev/null || missing+=("pcscd (pcscd)")
    [ -e /usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Info.plist ] || missing+=("the CCID driver (libccid)")
    ls /usr/lib/*/qemu/hw-usb-smartcard.so >/dev/null 2>&1 || missing+=("QEMU's usb-ccid device (qemu-system-x86)")
    ls /usr/lib/*/p11-kit-proxy.so >/dev/null 2>&1 || missing+=("p11-kit-proxy.so (p11-kit-modules)")
    ls /usr/lib/*/pkcs11/opensc-pkcs11.so >/dev/null 2>&1 || missing+=("opensc-pkcs11.so (opensc-pkcs11)")
    command -v pkcs11-tool >/dev/null || missing+=("pkcs11-tool (opensc)")
    command -v certutil >/dev/null || missing+=("certutil (libnss3-tools)")
    [ ${#missing[@]} = 0 ] && return 0
    echo "missing for the CCID scenarios: ${missing[*]}"
    return 1
}

# The real root's crypttab of the typed-passphrase scenarios (make-rootfs.sh, package.sh),
# from the disks in the current directory, by UUID. nofail + a short device timeout for
# "wrong": it is attached only in the wrong-key scenario; the password timeout bounds how
# long a boot may wait for a passphrase nobody will type.
write_crypttab() {
    {
        echo "data1 UUID=$(cryptsetup luksUUID data1.img) none luks"
        echo "data2 UUID=$(cryptsetup luksUUID data2.img) none luks"
        echo "wrong UUID=$(cryptsetup luksUUID wrong.img) none luks,nofail,x-systemd.device-timeout=3s,timeout=30s"
    } > "$1/etc/crypttab"
}

# The test-only parts of a real root (ROOT): the report and diagnose units, the secrets (so
# the guest can check its own journal for them), no login prompt on the serial console.
add_test_root_overlay() {
    local root=$1
    tar -C "$BOOT_SRC/rootfs-overlay" -c . | tar -C "$root" -x --keep-directory-symlink
    echo boot-test > "$root/etc/hostname"
    install -d -m 700 "$root/etc/test-boot/secrets"
    install -m 600 "$BOOT_WORK"/secrets/* "$root/etc/test-boot/secrets/"
    systemctl --root="$root" enable test-boot-report.service test-boot-diagnose.service
    # A login prompt would only add noise to the log.
    systemctl --root="$root" mask serial-getty@ttyS0.service getty@tty1.service
}

# encrypt_root_image ROOT IMAGE: the tree ROOT as an ext4 file system in a LUKS2 IMAGE
# whose only passphrase is the one the stand-in person types ("typed").
encrypt_root_image() {
    local root=$1 img=$2
    rm -f "$img"; truncate -s 560M "$img"
    mkfs.ext4 -q -F -L bootroot -d "$root" "$img" 512M
    cryptsetup reencrypt -q --encrypt --type luks2 --reduce-device-size 32M \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$(secret_file typed)" "$img"
    log "$(basename "$img") LUKS2 UUID=$(cryptsetup luksUUID "$img") ($(du -sh "$root" | cut -f1) of files)"
}

# The dracut command of the boot images, defined once for build-initrd.sh (with this
# machine's dracut and the staged module) and package.sh (run inside the package's root with
# the module the package installed: `declare -f boot_dracut` carries it there).
# A small generic image with systemd: only the modules a LUKS root needs. dracut 103+
# (Debian 13) has systemd-cryptsetup as a module of its own, which a LUKS root needs;
# dracut 059 (Debian 12) has it inside crypt.
#   boot_dracut OUT KVER OVERLAY-DIR "DRIVERS" "INSTALL" [EXTRA-MODULES]
boot_dracut() {
    local out=$1 kver=$2 overlay=$3 drivers=$4 install=$5 extra=${6:-} none
    local modules="bash systemd systemd-initrd systemd-journald systemd-udevd systemd-ask-password systemd-tmpfiles dracut-systemd udev-rules base fs-lib rootfs-block dm crypt shutdown crypt-agent"
    if compgen -G "/usr/lib/dracut/modules.d/[0-9][0-9]systemd-cryptsetup" >/dev/null; then
        modules="$modules systemd-cryptsetup"
    fi
    none=$(mktemp -d)
    dracut --force --no-hostonly --no-hostonly-cmdline --no-early-microcode \
        --conf /dev/null --confdir "$none" \
        --modules "$modules $extra" \
        --omit "plymouth i18n resume" \
        --drivers "$drivers" --filesystems ext4 \
        --install "$install" --include "$overlay" / \
        --compress zstd "$out" "$kver"
    local rc=$?
    rmdir "$none"
    return $rc
}
BOOT_DRIVERS="virtio_pci virtio_blk ext4 dm_crypt xts aesni_intel"
BOOT_INSTALL="keyctl journalctl sleep grep timeout"
