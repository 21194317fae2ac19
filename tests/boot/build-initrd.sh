#!/bin/bash
# SPDX-License-Identifier: MIT
# An initramfs for the boot tests: dracut with the project's module, taken
# from the staging tree (stage.sh), never from this machine's /usr/lib/dracut.
#   OUT=FILE      output (default $BOOT_WORK/initrd.img)
#   CARD=1        add what the smartcard scenarios need: a configuration that
#                 uses a card (CARD_CONF=FILE, default `card-enable = yes`),
#                 so the module adds pcscd and the reader drivers; virtio_net
#                 and a static address on QEMU's user network (test only), so
#                 the card emulator on the host reaches the guest's vpcd;
#                 CARD_STAGE_EXTRA=DIR: more files for that stage (a seed file)
#   CCID=1        with CARD=1: the card is in QEMU's own USB CCID reader
#                 instead (a PKCS#11 configuration in CARD_CONF): the USB host
#                 drivers and the test-ccid-status unit, no network; pkcs11-tool
#                 for that unit (test only: the module does not install it)
# Prints what the module put into the image (lsinitrd) and fails if the
# agent, its units or its initramfs drop-in are missing.
source "$(dirname "$0")/lib.sh"
require_boot_tools
STAGE=$BOOT_WORK/stage
MODULE=$STAGE/usr/lib/dracut/modules.d/91crypt-agent
[ -f "$MODULE/module-setup.sh" ] || die "run stage.sh first ($MODULE is missing)"
OUT=${OUT:-$BOOT_WORK/initrd.img}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# dracut reads its modules from $dracutbasedir/modules.d: a copy of the
# host's dracut made of symlinks, plus the staged module.
mkdir -p "$TMP/base/modules.d"
for f in /usr/lib/dracut/*; do [ "${f##*/}" = modules.d ] || ln -s "$f" "$TMP/base/"; done
for m in /usr/lib/dracut/modules.d/*; do ln -s "$m" "$TMP/base/modules.d/"; done
ln -s "$MODULE" "$TMP/base/modules.d/91crypt-agent"
export dracutbasedir=$TMP/base CRYPT_AGENT_STAGING=$STAGE

mkdir -p "$TMP/overlay"; cp -a "$BOOT_SRC/initrd-overlay/." "$TMP/overlay/"
DRIVERS=$BOOT_DRIVERS
INSTALL=$BOOT_INSTALL
if [ "${CARD:-0}" = 1 ] && [ "${CCID:-0}" = 1 ]; then
    # -usb: QEMU's PIIX3 UHCI controller, where usb-ccid attaches
    DRIVERS="$DRIVERS usb_common usbcore uhci_hcd"; INSTALL="$INSTALL pkcs11-tool"
    cp -a "$BOOT_SRC/initrd-overlay-ccid/." "$TMP/overlay/"
elif [ "${CARD:-0}" = 1 ]; then
    DRIVERS="$DRIVERS virtio_net"; INSTALL="$INSTALL ip"
    cp -a "$BOOT_SRC/initrd-overlay-card/." "$TMP/overlay/"
fi
if [ "${CARD:-0}" = 1 ]; then
    # The module installs pcscd and the reader drivers when the configuration
    # uses a card: a copy of the stage with such a configuration.
    cp -a "$STAGE" "$TMP/stage"
    rm -f "$TMP/stage/etc/crypt-agent.conf"
    if [ -n "${CARD_CONF:-}" ]; then install -D -m 644 "$CARD_CONF" "$TMP/stage/etc/crypt-agent.conf"
    else install -d "$TMP/stage/etc"; printf '[crypt-agent]\ncard-enable = yes\n' > "$TMP/stage/etc/crypt-agent.conf"; fi
    if [ -n "${CARD_STAGE_EXTRA:-}" ]; then cp -a "$CARD_STAGE_EXTRA/." "$TMP/stage/"; fi
    export CRYPT_AGENT_STAGING=$TMP/stage
    # The module installs the vpcd test reader only when asked.
    export crypt_agent_vpcd=yes
    ln -sfn "$TMP/stage/usr/lib/dracut/modules.d/91crypt-agent" "$TMP/base/modules.d/91crypt-agent"
fi
boot_dracut "$OUT" "$KVER" "$TMP/overlay" "$DRIVERS" "$INSTALL" 2> "$TMP/dracut.log" \
    || { cat "$TMP/dracut.log" >&2; die "dracut failed"; }

# What the module put in: the evidence asked for, and a check.
contents=$(lsinitrd "$OUT" 2>/dev/null)
echo "lsinitrd $OUT ($(du -h "$OUT" | cut -f1)), crypt-agent files:"
grep -E '^[-dl].*(crypt-agent|pcscd|pcsc/drivers|reader.conf|p11-kit|pkcs11|opensc)' <<< "$contents" | sed 's/^/  /'
for f in usr/sbin/crypt-agent usr/lib/systemd/system/crypt-agent.path usr/lib/systemd/system/crypt-agent.service \
         usr/lib/systemd/system/crypt-agent.service.d/50-initrd.conf \
         etc/systemd/system/sysinit.target.wants/crypt-agent.path; do
    grep -q " $f\( \|$\)" <<< "$contents" || die "the image lacks $f"
done
if [ -f "$CRYPT_AGENT_STAGING/etc/crypt-agent.conf" ]; then
    grep -q ' etc/crypt-agent.conf$' <<< "$contents" || die "the image lacks etc/crypt-agent.conf"
fi
if [ "${CCID:-0}" = 1 ]; then
    for f in usr/sbin/pcscd usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Linux/libccid.so \
             usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Info.plist usr/share/p11-kit/modules/opensc-pkcs11.module; do
        grep -q " $f\( \|$\)" <<< "$contents" || die "the CCID image lacks $f"
    done
    for f in p11-kit-proxy.so pkcs11/opensc-pkcs11.so libopensc.so; do
        grep -Eq " usr/lib/[^ /]+/$f[^ ]*( |$)" <<< "$contents" || die "the CCID image lacks $f"
    done
elif [ "${CARD:-0}" = 1 ]; then
    for f in usr/sbin/pcscd usr/lib/pcsc/drivers/serial/libifdvpcd.so etc/reader.conf.d/vpcd \
             usr/lib/systemd/system/crypt-agent.service.d/60-card.conf \
             usr/lib/systemd/system/crypt-agent.service.d/61-pcscd.conf; do
        grep -q " $f\( \|$\)" <<< "$contents" || die "the card image lacks $f"
    done
    # One pcscd: dracut's pcsc module with the module's drop-in, or its own unit.
    if grep -q ' usr/lib/systemd/system/pcscd.service$' <<< "$contents"; then
        grep -q ' usr/lib/systemd/system/pcscd.service.d/50-crypt-agent.conf$' <<< "$contents" \
            || die "dracut's pcscd.service is in the card image without the module's drop-in"
        ! grep -q ' usr/lib/systemd/system/crypt-agent-pcscd.service$' <<< "$contents" \
            || die "the card image has two pcscd units"
    else
        grep -q ' usr/lib/systemd/system/crypt-agent-pcscd.service$' <<< "$contents" \
            || die "the card image has no pcscd unit"
    fi
else
    ! grep -q 'libifdvpcd' <<< "$contents" || die "the image has the vpcd test driver, which nobody asked for"
fi
