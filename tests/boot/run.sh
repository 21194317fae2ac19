#!/bin/bash
# Run one boot scenario (see run-scenario.py). prepare.sh must have run.
source "$(dirname "$0")/lib.sh"
require_boot_tools
require_agent_binary
for f in root.img data1.img data2.img initrd.img; do
    [ -s "$BOOT_WORK/$f" ] || die "$BOOT_WORK/$f is missing: run prepare.sh first"
done
case $1 in
    card-*) why=$(card_tools_present) || skip "$why"
            [ -s "$BOOT_WORK/initrd-card.img" ] || die "$BOOT_WORK/initrd-card.img is missing: run prepare.sh";;
esac
export BOOT_WORK KERNEL
exec python3 "$BOOT_SRC/run-scenario.py" "$@"
