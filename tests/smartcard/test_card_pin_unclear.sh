#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 13 item 13: a card that answers the empty VERIFY (PIN status query) with
# 6A88 "referenced data not found", as CAC cards do, still wants a PIN.  The
# agent must not report "PIN not needed": status says the answer is unclear, and
# derive sends the challenge, gets 6982 (security status not satisfied) and asks
# for the PIN once.
. "$(dirname "$0")/lib.sh"
fixture start --verify-status 6A88

card status > "$T/status.out" 2> "$T/status.err" || fail "card status failed"
grep -q 'PIN unclear (VERIFY answered 6A88 (referenced data not found))' "$T/status.out" \
    || fail "status: $(cat "$T/status.out")"
! grep -qi 'not needed' "$T/status.out" || fail "status reads 6A88 as 'not needed': $(cat "$T/status.out")"
ok "card status: 6A88 is unclear, not 'PIN not needed'"

answer_pins "$PIN"
card derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 10 > "$T/derive.out" 2> "$T/derive.err" \
    || fail "card derive failed: $(cat "$T/derive.err")"
want=$(expected_pass "$LAB_RESPONSE" "$(cat "$T/seed.hex")" "${UUIDS[0]}")
[ "$(cat "$T/derive.out")" = "$want" ] || fail "derived passphrase differs from the independent HKDF"
grep -q '^00880600.. 6982$' "$T/fx/apdu.log" || fail "no challenge answered 6982 before the PIN: $(cat "$T/fx/apdu.log")"
grep -q '^00880600.. 9000$' "$T/fx/apdu.log" || fail "no challenge answered 9000 after the PIN"
[ "$(verifies_with_pin)" = 1 ] || fail "expected 1 VERIFY with PIN, card saw $(verifies_with_pin)"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
ok "derive: challenge -> 6982 -> one PIN prompt -> VERIFY -> challenge answered"
no_secrets_in_logs "$PIN" "$LAB_RESPONSE" "$want"
