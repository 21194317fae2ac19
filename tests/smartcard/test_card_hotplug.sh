#!/bin/bash
# SPDX-License-Identifier: MIT
# Hot-plug: the card arrives 2 s after the request; the card is pulled in the
# middle of the challenge (the emulator answers INTERNAL AUTHENTICATE after
# 1.5 s, and is stopped meanwhile) and the operation is redone on reinsertion,
# with a new PIN prompt because removal lost the verified PIN.
. "$(dirname "$0")/lib.sh"
fixture start --no-card
want=$(expected_pass "$LAB_RESPONSE" "$(cat "$T/seed.hex")" "${UUIDS[0]}")

# --- card inserted 2 s late
answer_pins "$PIN"
start_card late derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 15
pid=$BG
sleep 2
kill -0 "$pid" 2>/dev/null || fail "derive gave up before the card arrived"
[ ! -s "$T/late.out" ] || fail "derive answered without a card"
fixture insert
wait "$pid" || fail "derive failed after the late card"
[ "$(cat "$T/late.out")" = "$want" ] || fail "late card: wrong passphrase"
ok "card inserted 2 s late: answered"

# --- card pulled mid-operation
fixture pull
fixture insert --slow 88=1.5
: > "$T/fx/apdu.log"
answer_pins "$PIN" "$PIN"
start_card pulled derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 20
pid=$BG
# The emulator logs a command after answering it, so wait for the VERIFY
# to be answered: the next command is the slow challenge.
wait_for 10 grep -q '^0020008006 9000' "$T/fx/apdu.log" || fail "no VERIFY reached the card"
sleep 0.5
fixture pull          # mid-challenge: the card is gone before it answers
sleep 1
fixture insert        # back, at normal speed
wait "$pid" || fail "derive did not recover from the pulled card"
[ "$(cat "$T/pulled.out")" = "$want" ] || fail "pulled card: wrong passphrase"
[ "$(wc -l < "$T/prompts")" = 3 ] || fail "expected a second PIN prompt after the pull (prompts: $(wc -l < "$T/prompts"))"
grep -qi 'removed\|retrying\|gone' "$T/pulled.err" || fail "no log line about the removal"
ok "card pulled mid-challenge: recovered on reinsertion (PIN asked again)"

no_secrets_in_logs "$PIN" "$LAB_RESPONSE" "$want"
