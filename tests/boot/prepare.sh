#!/bin/bash
# SPDX-License-Identifier: MIT
# Everything the boot scenarios share, rebuilt from the current build:
# the staged install, the data disks, the real root (root.img) and the
# initramfs. About 1 to 2 minutes (the first run adds mmdebstrap's download).
source "$(dirname "$0")/lib.sh"
require_boot_tools
require_agent_binary
T0=$SECONDS
"$BOOT_SRC/stage.sh"
"$BOOT_SRC/make-disks.sh"
"$BOOT_SRC/make-rootfs.sh"
"$BOOT_SRC/build-initrd.sh"
if card_tools_present; then
    CARD=1 OUT="$BOOT_WORK/initrd-card.img" "$BOOT_SRC/build-initrd.sh"
    # Its skip (77: a tool missing) only takes the card-one-pin scenario away.
    "$BOOT_SRC/prepare-card.sh" || [ $? = 77 ]
    # Enrolled copies for card-rotate (its skip, 77, only takes that scenario away).
    "$BOOT_SRC/prepare-rotate.sh" || [ $? = 77 ]
else
    log "no card initramfs: $(card_tools_present || true)"
fi
# The CCID scenarios (QEMU's own CCID reader, a PKCS#11 key); 77 only takes them away.
if why=$(ccid_tools_present); then
    "$BOOT_SRC/prepare-ccid.sh" || [ $? = 77 ]
else
    log "no CCID initramfs: $why"
fi
log "prepared in $((SECONDS - T0)) s: $(cd "$BOOT_WORK" && ls -sh ./*.img | tr '\n' ' ')"
