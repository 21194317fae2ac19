#!/bin/bash
# SPDX-License-Identifier: MIT
# Three volumes from one card operation and one PIN prompt; the derivation
# matches LAB.md's vector (card key 000102..0F, seed 32 x 0x11) recomputed
# independently; status shows tries left without spending one.
. "$(dirname "$0")/lib.sh"
fixture start

card status > "$T/status.out" 2> "$T/status.err" || fail "card status failed"
grep -q 'Virtual PCD 00 00": card present, ATR 3B.*PIN 3 tries left' "$T/status.out" || fail "status: $(cat "$T/status.out")"
[ "$(verifies_with_pin)" = 0 ] || fail "card status sent a PIN"
ok "card status shows the card and 3 tries left without spending one"

answer_pins "$PIN"
card derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --uuid "${UUIDS[1]}" --uuid "${UUIDS[2]}" \
    --card-wait 10 > "$T/derive.out" 2> "$T/derive.err" || fail "card derive failed"
mapfile -t got < "$T/derive.out"
[ ${#got[@]} = 3 ] || fail "expected 3 passphrases, got ${#got[@]}"
for i in 0 1 2; do
  want=$(expected_pass "$LAB_RESPONSE" "$(cat "$T/seed.hex")" "${UUIDS[$i]}")
  [ "${got[$i]}" = "$want" ] || fail "volume $i: passphrase differs from the independent HKDF over the LAB.md response"
done
[ "${got[0]}" != "${got[1]}" ] && [ "${got[1]}" != "${got[2]}" ] && [ "${got[0]}" != "${got[2]}" ] || fail "passphrases not distinct"
ok "three distinct per-volume passphrases, equal to HKDF(LAB.md response, seed, label||uuid)"

[ "$(apdus 88)" = 1 ] || fail "expected 1 INTERNAL AUTHENTICATE, card saw $(apdus 88)"
[ "$(verifies_with_pin)" = 1 ] || fail "expected 1 VERIFY with PIN, card saw $(verifies_with_pin)"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
grep -q 'reader "Virtual PCD 00 00" (3 tries left)' "$T/prompts" || fail "prompt: $(cat "$T/prompts")"
ok "one card operation: $(wc -l < "$T/fx/apdu.log") APDUs, 1 challenge, 1 VERIFY, 1 prompt"
# Its waits, said (stderr is no terminal): the card's, then the PIN's, each begun and ended.
for w in "waiting for a card in any reader (up to 10 s)" "found a card in reader \"Virtual PCD 00 00\"" \
         "waiting for the PIN of the card in reader \"Virtual PCD 00 00\" (asked through ask-password) (up to 180 s)" \
         "PIN entered"; do
  grep -qxF "crypt-agent card derive: $w" "$T/derive.err" || fail "derive did not say: $w"
done
ok "card derive says what it waits for: the card, then its PIN"
[ -z "$(ls -A "$ASK")" ] || fail "ask directory not cleaned: $(ls -A "$ASK")"
ok "PIN question and socket removed"

# Determinism check (enrolment asks twice): two challenges, same result.
answer_pins "$PIN"
card derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --check-determinism --card-wait 10 \
    > "$T/det.out" 2> "$T/det.err" || fail "derive --check-determinism failed"
[ "$(cat "$T/det.out")" = "${got[0]}" ] || fail "determinism run derived another passphrase"
[ "$(apdus 88)" = 3 ] || fail "expected 2 more challenges for the determinism check, card saw $(apdus 88) in all"
ok "determinism check sends the challenge twice"

no_secrets_in_logs "$PIN" "$LAB_RESPONSE" "${got[@]}"
