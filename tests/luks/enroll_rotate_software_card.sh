#!/bin/bash
# SPDX-License-Identifier: MIT
# Enrol three volumes (LUKS2, LUKS2, LUKS1), rotate them, and check what an
# administrator would: the person's passphrase still opens, the agent keys open,
# tokens/records name them, old keys stop working, one card operation per seed.
# Software card: computes what the virtual card answers (see software_card.hpp).
. "$(dirname "$0")/lib.sh"
need cryptsetup

V=("$WORK/a.luks2" "$WORK/b.luks2" "$WORK/c.luks1")
make_volume "${V[0]}" luks2; make_volume "${V[1]}" luks2; make_volume "${V[2]}" luks1
LOG="$WORK/log"

# --dry-run changes nothing
sums_before=$(sha256sum "${V[@]}")
enroll --dry-run "${V[@]}" >>"$LOG" 2>&1 || fail "dry-run enroll failed"
grep -q "would enrol" "$LOG" || fail "dry-run printed no plan"
[ "$sums_before" = "$(sha256sum "${V[@]}")" ] || fail "dry-run changed an image"
[ ! -e "$STORE" ] || [ -z "$(ls -A "$STORE")" ] || fail "dry-run wrote the LUKS1 store"

enroll "${V[@]}" >>"$LOG" 2>&1 || fail "enroll failed: $(cat "$LOG")"
grep -q "card operations: 1" "$LOG" || fail "enrol should use one card operation (both challenges of the determinism check in one session)"
for i in 0 1 2; do
    v=${V[$i]}
    opens_with "$v" "$WORK/pass" || fail "the person's passphrase no longer opens $v"
    current_key "$v" "$WORK/key1.$i" || fail "no agent key for $v"
    opens_with "$v" "$WORK/key1.$i" || fail "the agent key does not open $v"
done
for v in "${V[0]}" "${V[1]}"; do
    cryptsetup token export --token-id 0 "$v" | grep -q '"type":"crypt-agent"' || fail "no crypt-agent token in $v"
    cryptsetup luksDump "$v" | grep -A2 'crypt-agent' | grep -q 'Keyslot: *1' || fail "token of $v not bound to keyslot 1"
    cryptsetup luksDump "$v" | grep -A6 '^  1: luks2' | grep -q 'PBKDF: *pbkdf2' || fail "agent keyslot of $v is not PBKDF2"
done
ls "$STORE"/*.rec >/dev/null 2>&1 || fail "no LUKS1 store record"
check --strict "${V[@]}" >>"$LOG" || fail "check after enrol: $(tail -3 "$LOG")"

# Enrolling again changes nothing (so an interrupted enrol can simply be re-run).
sums_before=$(sha256sum "${V[@]}" "$STORE"/*)
enroll "${V[@]}" >>"$LOG" 2>&1 || fail "re-enrol failed"
grep -q "a.luks2: already enrolled (generation 1, keyslot 1): nothing to do" "$LOG" || fail "re-enrol message unclear"
[ "$sums_before" = "$(sha256sum "${V[@]}" "$STORE"/*)" ] || fail "re-enrol changed something"

# A wrong passphrase fails that volume alone.
make_volume "$WORK/e.luks2" luks2
printf 'wrong\n' | "$TOOL" enroll --passphrase-stdin "${S_OPTS[@]}" "$WORK/e.luks2" "${V[0]}" >>"$LOG" 2>&1; rc=$?
[ $rc = 1 ] || fail "enrol with a wrong passphrase should exit 1, got $rc"
grep -q "e.luks2: failed: the given passphrase does not open it" "$LOG" || fail "no clear message for a wrong passphrase"

rotate "${V[@]}" >>"$LOG" 2>&1 || fail "rotate failed: $(tail -5 "$LOG")"
grep -q "3 of 3 volumes done, 0 failed; card operations: 1" "$LOG" || fail "rotate summary: $(tail -2 "$LOG")"
for i in 0 1 2; do
    v=${V[$i]}
    opens_with "$v" "$WORK/key1.$i" && fail "the old agent key still opens $v after rotation"
    current_key "$v" "$WORK/key2.$i" || fail "no agent key after rotation for $v"
    cmp -s "$WORK/key1.$i" "$WORK/key2.$i" && fail "rotation kept the same key for $v"
    opens_with "$v" "$WORK/key2.$i" || fail "the new agent key does not open $v"
    opens_with "$v" "$WORK/pass" || fail "the person's passphrase no longer opens $v after rotation"
done
"$TOOL" check --strict --card-luks1-dir "$STORE" --passphrase-file "$WORK/pass" "${V[@]}" | tee -a "$LOG" | grep -c 'record=\[2/' | grep -qx 3 \
    || fail "records not at generation 2"
for v in "${V[0]}" "${V[1]}"; do
    cryptsetup token export --token-id 0 "$v" | grep -q '"generation":2' || fail "token of $v not updated"
done

# rotate --dry-run says what it would do and changes nothing.
sums_before=$(sha256sum "${V[@]}" "$STORE"/*)
rotate --dry-run "${V[@]}" >>"$LOG" 2>&1 || fail "rotate --dry-run failed"
grep -q "would rotate generation 2 (keyslot 2) to generation 3 (keyslot 1)" "$LOG" || fail "rotate --dry-run printed no plan"
[ "$sums_before" = "$(sha256sum "${V[@]}" "$STORE"/*)" ] || fail "rotate --dry-run changed something"

# A volume another run holds is skipped with a clear message; the others rotate.
mkdir -p "$LOCKS"
flock "$LOCKS/$(cryptsetup luksUUID "${V[1]}").lock" sleep 3 &
holder=$!
sleep 0.3
rotate "${V[0]}" "${V[1]}" >>"$LOG" 2>&1; rc=$?
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
[ $rc = 1 ] || fail "rotate with a busy volume should exit 1, got $rc"
grep -q "b.luks2: failed: another crypt-agent enroll or rotate is working on this volume" "$LOG" || fail "no clear message for the busy volume"
grep -q "a.luks2: rotated generation 2 -> generation 3" "$LOG" || fail "the free volume did not rotate"

# A volume that is not enrolled fails alone; the others rotate.
make_volume "$WORK/d.luks2" luks2
rotate "${V[0]}" "$WORK/d.luks2" >>"$LOG" 2>&1; rc=$?
[ $rc = 1 ] || fail "rotate with one unenrolled volume should exit 1, got $rc"
grep -q "d.luks2: failed: .*not enrolled" "$LOG" || fail "no clear message for the unenrolled volume"
grep -q "a.luks2: rotated generation 3 -> generation 4" "$LOG" || fail "the enrolled volume did not rotate"

# With no VOLUME, rotate takes the enrolled volumes of crypttab and skips the rest.
cat > "$WORK/crypttab" <<TAB
# name  source  key  options
a_crypt ${V[0]} none luks
d_crypt $WORK/d.luks2 none luks
TAB
rotate --card-crypttab "$WORK/crypttab" > "$WORK/crypttab.log" 2>&1 || fail "rotate from crypttab: $(cat "$WORK/crypttab.log")"
grep -q "a.luks2: rotated generation 4 -> generation 5" "$WORK/crypttab.log" || fail "crypttab volume not rotated: $(cat "$WORK/crypttab.log")"
grep -q "1 of 1 volumes done" "$WORK/crypttab.log" || fail "the unenrolled crypttab volume was not skipped"
cat "$WORK/crypttab.log" >> "$LOG"

# On a terminal: progress per volume and plain summaries; otherwise only
# <N>-prefixed summary lines for the journal (checked in the logs above).
grep -q "adding keyslot" "$LOG" && fail "progress lines written without a terminal"
if command -v script >/dev/null; then
    script -qec "$(printf '%q ' "$TOOL" rotate "${S_OPTS[@]}" "${V[0]}")" /dev/null | tr -d '\r' > "$WORK/tty.log"
    grep -q "a.luks2: adding keyslot" "$WORK/tty.log" || fail "no progress on a terminal: $(cat "$WORK/tty.log")"
    grep -q "^$WORK/a.luks2: rotated" "$WORK/tty.log" || fail "no plain summary on a terminal: $(cat "$WORK/tty.log")"
    cat "$WORK/tty.log" >> "$LOG"
fi

assert_no_secrets_in "$LOG" "$WORK"/key*.*
echo "PASS: enrol 3 volumes (LUKS2, LUKS2, LUKS1), rotate, old keys refused, person's passphrase kept"
