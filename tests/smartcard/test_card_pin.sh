#!/bin/bash
# SPDX-License-Identifier: MIT
# PIN rules: a wrong PIN twice shows the tries left to the person; with one
# try left the agent sends no PIN on its own and asks nobody, so the card is
# never blocked by it; a later run refuses at once (empty VERIFY only).
# The right PIN typed with --card-allow-last-pin-try yes (a person's explicit choice)
# then resets the counter.
. "$(dirname "$0")/lib.sh"
fixture start
W1=111111; W2=222222

answer_pins "$W1" "$W2"
rc=0
card derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 15 \
    > "$T/wrong.out" 2> "$T/wrong.err" || rc=$?
[ $rc = 1 ] || fail "derive exit code $rc after two wrong PINs (want 1)"
[ ! -s "$T/wrong.out" ] || fail "a passphrase was printed"
mapfile -t prompts < "$T/prompts"
[ ${#prompts[@]} = 2 ] || fail "expected exactly 2 PIN prompts, got ${#prompts[@]}: $(cat "$T/prompts")"
[[ ${prompts[0]} == *"(3 tries left)"* ]] || fail "first prompt: ${prompts[0]}"
[[ ${prompts[1]} == "Wrong PIN."*"(2 tries left)"* ]] || fail "second prompt: ${prompts[1]}"
ok "prompts showed 3, then 'Wrong PIN' with 2 tries left"
grep -q 'one PIN try left; crypt-agent will not spend it' "$T/wrong.err" || fail "no log line about the last try"
[ "$(verifies_with_pin)" = 2 ] || fail "expected 2 VERIFY with a PIN, card saw $(verifies_with_pin)"
[ "$(apdus 88)" = 0 ] || fail "a challenge was sent without a verified PIN"
[ -z "$(ls -A "$ASK")" ] || fail "a PIN question was left behind: $(ls -A "$ASK")"
ok "with one try left: no third VERIFY, no third prompt"

card status > "$T/status.out" 2> "$T/status.err" || fail "card status failed"
grep -q 'PIN 1 try left' "$T/status.out" || fail "card status: $(cat "$T/status.out")"
ok "card not blocked: status shows 1 try left"

# A new run with one try left: refuses without asking anybody.
: > "$T/fx/apdu.log"; : > "$T/prompts"
rc=0
card derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 10 \
    > "$T/again.out" 2> "$T/again.err" || rc=$?
[ $rc = 1 ] || fail "second run exit code $rc (want 1)"
[ "$(verifies_with_pin)" = 0 ] || fail "second run sent a PIN"
[ ! -s "$T/prompts" ] || fail "second run asked for a PIN"
ok "a fresh run with one try left refuses at once (only the empty VERIFY reached the card)"

# A person may choose to spend the last try (explicit option); the prompt warns.
answer_pins "$PIN"
card derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 10 --card-allow-last-pin-try yes \
    > "$T/last.out" 2> "$T/last.err" || fail "derive with the right PIN on the last try failed"
grep -q '^LAST TRY: a wrong PIN blocks the card.*(1 try left)' "$T/prompts" || fail "last-try prompt: $(cat "$T/prompts")"
card status > "$T/status2.out" 2> "$T/status2.err"
grep -q 'PIN 3 tries left' "$T/status2.out" || fail "counter not reset: $(cat "$T/status2.out")"
ok "--card-allow-last-pin-try yes: warned prompt, right PIN resets the counter to 3"

no_secrets_in_logs "$PIN" "$W1" "$W2" "$LAB_RESPONSE" "$(cat "$T/last.out")"
