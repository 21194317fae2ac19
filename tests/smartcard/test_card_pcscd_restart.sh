#!/bin/bash
# SPDX-License-Identifier: MIT
# pcscd goes away and comes back: the monitor's blocked SCardGetStatusChange
# fails (SCARD_F_COMM_ERROR), a new context is made when pcscd is back, and the
# waiting request is served.  Also: started while pcscd is not running at all.
. "$(dirname "$0")/lib.sh"
fixture start --no-card
want=$(expected_pass "$LAB_RESPONSE" "$(cat "$T/seed.hex")" "${UUIDS[0]}")

# --- restart while a request waits for a card
answer_pins "$PIN"
start_card restart derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 20
pid=$BG
wait_for 5 grep -q 'reader "Virtual PCD 00 00" added' "$T/restart.err" || fail "agent never saw the reader"
fixture restart-pcscd     # new pcscd, and the card comes with it
wait "$pid" || fail "derive did not recover after pcscd restarted"
[ "$(cat "$T/restart.out")" = "$want" ] || fail "wrong passphrase after pcscd restart"
grep -q 'pcscd is not available' "$T/restart.err" || fail "no log line about pcscd going away"
ok "pcscd restarted: new context, card found, request answered"

# --- pcscd down when the request starts
"$FIXTURE" stop "$T/fx"
answer_pins "$PIN"
start_card nosvc derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 20
pid=$BG
sleep 1.5
kill -0 "$pid" 2>/dev/null || fail "derive gave up while pcscd was down"
fixture restart-pcscd
wait "$pid" || fail "derive did not recover after pcscd started"
[ "$(cat "$T/nosvc.out")" = "$want" ] || fail "wrong passphrase after pcscd started"
ok "started without pcscd: waited, then answered"

no_secrets_in_logs "$PIN" "$LAB_RESPONSE" "$want"
