#!/bin/bash
# SPDX-License-Identifier: MIT
# The data disks of the boot tests, built without device-mapper on the host:
# an ext4 image made from a directory, then encrypted in place offline.
#   data1.img  LUKS2, keyslots: its own passphrase "data1", and "typed"
#   data2.img  LUKS1, keyslots: its own passphrase "data2", and "typed"
#   wrong.img  LUKS2, keyslot: "wrong" only (nobody ever types it)
# "typed" is what the stand-in person types for the root volume; each data
# disk also has a passphrase of its own, as disks set up one by one do.
# The root disk is made by make-rootfs.sh (it needs the Debian tree).
source "$(dirname "$0")/lib.sh"
require_boot_tools
mkdir -p "$BOOT_WORK"; cd "$BOOT_WORK"

# Cheapest PBKDF: these are throw-away test keys and boots run under TCG.
FAST=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)

# make_disk IMAGE TYPE OWN-SECRET MARKER-TEXT
# Offline encryption of LUKS1 needs device-mapper in cryptsetup 2.6; LUKS2's
# does not. So every disk is encrypted as LUKS2 and a LUKS1 one converted.
make_disk() {
    local img=$1 type=$2 own=$3 text=$4 dir
    dir=$(mktemp -d); echo "$text" > "$dir/marker.txt"
    rm -f "$img"; truncate -s 40M "$img"
    mkfs.ext4 -q -F -L "${img%.img}" -d "$dir" "$img" 32M
    rm -rf "$dir"
    cryptsetup reencrypt -q --encrypt --type luks2 --reduce-device-size 8M \
        "${FAST[@]}" --key-file "$(secret_file "$own")" "$img"
    if [ "$type" = luks1 ]; then cryptsetup convert -q --type luks1 "$img"; fi
}

make_disk data1.img luks2 data1 "DATA1-MARKER-OK"
cryptsetup luksAddKey -q "${FAST[@]}" --key-file "$(secret_file data1)" data1.img "$(secret_file typed)"
make_disk data2.img luks1 data2 "DATA2-MARKER-OK"
cryptsetup luksAddKey -q "${FAST[@]}" --key-file "$(secret_file data2)" data2.img "$(secret_file typed)"
make_disk wrong.img luks2 wrong "WRONG-MARKER-MUST-NOT-OPEN"

for img in data1.img data2.img wrong.img; do
    log "$img $(cryptsetup luksDump "$img" | sed -n 's/^Version:[[:space:]]*/LUKS/p') UUID=$(cryptsetup luksUUID "$img")"
done
