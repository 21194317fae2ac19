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
