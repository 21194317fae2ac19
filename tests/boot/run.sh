#!/bin/bash
# SPDX-License-Identifier: MIT
# Run one boot scenario (see run-scenario.py). prepare.sh must have run.
source "$(dirname "$0")/lib.sh"
require_boot_tools
require_agent_binary
case $1 in
    ccid-reaches-guest) ;;   # no disks: the initramfs alone
    *) for f in root.img data1.img data2.img initrd.img; do
           [ -s "$BOOT_WORK/$f" ] || die "$BOOT_WORK/$f is missing: run prepare.sh first"
       done ;;
esac
case $1 in
    card-reaches-guest) card_images=(initrd-card.img) ;;
    card-rotate)        card_images=(initrd-card-rot.img root-rot.img data1-rot.img data2-rot.img rot-store) ;;
    card-*)             card_images=(initrd-card-luks.img root-card.img data1-card.img data2-card.img) ;;
    ccid-reaches-guest) card_images=(initrd-ccid.img ccid-db) ;;
    ccid-one-pin-rotate) card_images=(initrd-ccid-rot.img root-ccid-rot.img data1-ccid-rot.img data2-ccid-rot.img
                                      ccid-rot-store ccid-db secrets/ccid-key1.pem) ;;
    *)                  card_images=() ;;
esac
if [ ${#card_images[@]} != 0 ]; then
    case $1 in ccid-*) why=$(ccid_tools_present) || skip "$why" ;;
               *)      why=$(card_tools_present) || skip "$why" ;; esac
    for f in "${card_images[@]}"; do
        [ -s "$BOOT_WORK/$f" ] || die "$BOOT_WORK/$f is missing: run prepare.sh"
    done
fi
export BOOT_WORK KERNEL
exec python3 "$BOOT_SRC/run-scenario.py" "$@"
