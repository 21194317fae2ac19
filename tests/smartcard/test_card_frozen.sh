#!/bin/bash
# SPDX-License-Identifier: MIT
# A card that stops answering (emulator SIGSTOPped: SCardTransmit blocks with
# no timeout): the watchdog abandons the operation with a log line, the event
# loop keeps answering (SIGUSR1 status line), and SIGTERM ends the process
# promptly although a thread is still blocked in pcsc-lite.
. "$(dirname "$0")/lib.sh"
fixture start
fixture freeze

start_card frozen derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 60 --card-watchdog 1
pid=$BG
t0=$(date +%s%N)
wait_for 5 grep -q 'did not answer within 1000 ms' "$T/frozen.err" || fail "watchdog did not fire"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok "watchdog fired after ${ms} ms (limit 1000 ms + start-up)"

kill -USR1 "$pid"
wait_for 2 grep -q 'status: pcscd up; reader "Virtual PCD 00 00" card present (not answering)' "$T/frozen.err" \
  || fail "loop did not answer SIGUSR1 while the card hangs"
ok "event loop still responsive while a thread is stuck in SCardTransmit"

t1=$(date +%s%N)
kill -TERM "$pid"
rc=0; wait_for 3 bash -c "! kill -0 $pid" || fail "process did not exit within 3 s of SIGTERM"
wait "$pid" || rc=$?
ms=$(( ($(date +%s%N) - t1) / 1000000 ))
[ $rc = 143 ] || fail "exit code $rc after SIGTERM (want 143)"
ok "exited with 143 ${ms} ms after SIGTERM"
[ ! -s "$T/frozen.out" ] || fail "printed a passphrase without a card answer"
[ -z "$(ls -A "$ASK")" ] || fail "ask directory not cleaned"
fixture thaw

# The same card thawing later is used again: the abandoned operation returns,
# the reader is no longer marked frozen, and the request is served.
want=$(expected_pass "$LAB_RESPONSE" "$(cat "$T/seed.hex")" "${UUIDS[0]}")
fixture freeze
answer_pins "$PIN"
start_card thawed derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 30 --card-watchdog 1
pid=$BG
wait_for 5 grep -q 'did not answer within 1000 ms' "$T/thawed.err" || fail "watchdog did not fire (second run)"
fixture thaw
wait "$pid" || fail "derive failed after the card thawed"
[ "$(cat "$T/thawed.out")" = "$want" ] || fail "wrong passphrase after thaw"
grep -q 'answers again' "$T/thawed.err" || fail "no log line about the card answering again"
ok "a card that answers again after the watchdog is used again"

no_secrets_in_logs "$PIN" "$LAB_RESPONSE" "$want"
