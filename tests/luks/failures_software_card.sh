#!/bin/bash
# SPDX-License-Identifier: MIT
# A volume that cannot rotate fails alone, with a message an administrator can
# act on, and stays on its old key; the others rotate:
#  - LUKS1 with all 8 keyslots in use
#  - LUKS2 whose binary keyslot area is full (small --luks2-keyslots-size)
#  - a read-only header (chattr +i on the image: root ignores file modes)
# Software card: computes what the virtual card answers (see software_card.hpp).
. "$(dirname "$0")/lib.sh"
need cryptsetup chattr lsattr

OK1="$WORK/ok.luks2"; OK2="$WORK/ok.luks1"
FULL1="$WORK/full.luks1"; FULL2="$WORK/full.luks2"; RO="$WORK/ro.luks2"
make_volume "$OK1" luks2; make_volume "$OK2" luks1; make_volume "$FULL1" luks1; make_volume "$RO" luks2
# Room for exactly two keyslots of a 512-bit key (258048 bytes each): the
# person's and the agent's.  A rotation needs a third.
make_volume "$FULL2" luks2 --luks2-keyslots-size 516096 2>/dev/null
ALL=("$OK1" "$OK2" "$FULL1" "$FULL2" "$RO")
LOG="$WORK/log"
enroll "${ALL[@]}" >>"$LOG" 2>&1 || fail "enrol: $(cat "$LOG")"
for n in 2 3 4 5 6 7; do
    printf 'other-%s' "$n" > "$WORK/other"
    cryptsetup luksAddKey -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$WORK/pass" "$FULL1" "$WORK/other" \
        || fail "filling $FULL1"
done
i=0; for v in "${ALL[@]}"; do current_key "$v" "$WORK/before.$i"; i=$((i + 1)); done

chattr +i "$RO" || { echo "SKIP: chattr +i is not supported on $(df --output=fstype "$WORK" | tail -1)"; exit 77; }
sum_ro=$(sha256sum < "$RO")
rotate "${ALL[@]}" >"$LOG" 2>&1; rc=$?
chattr -i "$RO"
cat "$LOG"
[ $rc = 1 ] || fail "exit status $rc, want 1 (some volumes failed)"
grep -q "ok.luks2: rotated generation 1 -> generation 2" "$LOG" || fail "the LUKS2 volume did not rotate"
grep -q "ok.luks1: rotated generation 1 -> generation 2" "$LOG" || fail "the LUKS1 volume did not rotate"
grep -q "full.luks1: failed: .*all 8 keyslots are in use; free one with cryptsetup luksKillSlot" "$LOG" \
    || fail "no clear message for the LUKS1 volume without a free keyslot"
grep -q "full.luks2: failed: .*keyslot area is full" "$LOG" || fail "no clear message for the full LUKS2 keyslot area"
grep -q "ro.luks2: failed: .*the LUKS header is read-only (Operation not permitted)" "$LOG" || fail "no clear message for the read-only header"
grep -q "2 of 5 volumes done, 3 failed" "$LOG" || fail "summary line"
[ "$sum_ro" = "$(sha256sum < "$RO")" ] || fail "the read-only image changed"

# The failed volumes stay on their old key with a clean record and no new keyslot.
i=0
for v in "${ALL[@]}"; do
    case $v in
    *ok.*) opens_with "$v" "$WORK/before.$i" && fail "old key still opens $v" ;;
    *) opens_with "$v" "$WORK/before.$i" || fail "$v lost its old key after a failed rotation" ;;
    esac
    opens_with "$v" "$WORK/pass" || fail "the person's passphrase no longer opens $v"
    i=$((i + 1))
done
# (FULL1's extra keyslots are the person's other passphrases, which check cannot know.)
check --strict "$OK1" "$OK2" "$FULL2" "$RO" >>"$LOG" || fail "leak or unfinished record: $(tail -5 "$LOG")"
check "$FULL1" | grep -q 'record=\[1/slot1\] current_opens=1 person_opens=1 retiring=\[\] leaked=\[2,3,4,5,6,7\]' \
    || fail "$FULL1 changed: $(check "$FULL1")"

# Once the cause is gone, the next run rotates them.
cryptsetup luksKillSlot -q --key-file "$WORK/pass" "$FULL1" 7 || fail "luksKillSlot"
rotate "$FULL1" "$RO" >>"$LOG" 2>&1 || fail "rotate after fixing: $(tail -3 "$LOG")"
# LUKS1 store: a corrupted record is detected by its checksum and the previous
# generation of the file is used (with a note); with both corrupted the volume
# fails alone with a clear message.
rec="$STORE/$(cryptsetup luksUUID "$OK2").rec"
[ -f "$rec" ] && [ -f "$rec.prev" ] || fail "the LUKS1 store keeps no previous generation"
printf 'X' | dd of="$rec" bs=1 seek=20 conv=notrunc status=none
rotate "$OK2" > "$WORK/corrupt.log" 2>&1 || fail "rotate with a corrupted primary record: $(cat "$WORK/corrupt.log")"
grep -q "is unusable (store record checksum mismatch (corrupted)); using the previous generation" "$WORK/corrupt.log" \
    || fail "no note about the corrupted record: $(cat "$WORK/corrupt.log")"
check --strict "$OK2" > /dev/null || fail "after rotating past a corrupted record: $(check "$OK2")"
printf 'X' | dd of="$rec" bs=1 seek=20 conv=notrunc status=none
printf 'X' | dd of="$rec.prev" bs=1 seek=20 conv=notrunc status=none
rotate "$OK1" "$OK2" > "$WORK/corrupt2.log" 2>&1; rc=$?
[ $rc = 1 ] || fail "both records corrupted: want exit 1, got $rc"
grep -q "ok.luks1: failed: both seed records are unusable" "$WORK/corrupt2.log" || fail "no clear message: $(cat "$WORK/corrupt2.log")"
grep -q "ok.luks2: rotated" "$WORK/corrupt2.log" || fail "the other volume did not rotate"
opens_with "$OK2" "$WORK/pass" || fail "the person's passphrase no longer opens $OK2"
cat "$WORK/corrupt.log" "$WORK/corrupt2.log" >> "$LOG"

assert_no_secrets_in "$LOG" "$WORK"/before.*
echo "PASS: full keyslots (LUKS1), full keyslot area (LUKS2), read-only header, corrupted LUKS1 records each failed alone"
