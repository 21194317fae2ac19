#!/bin/bash
# SPDX-License-Identifier: MIT
# Timings of card operations on the private pcscd + virtual card (not a test):
#   CARD_TOOL=... PCSC_WAIT=... measure.sh [RUNS]
# Prints: derive wall time with one PIN prompt answered at once (process start,
# PC/SC monitor, empty VERIFY, prompt, VERIFY, challenge), and the time from a
# late card being present to the passphrase being printed.
. "$(dirname "$0")/lib.sh"
RUNS=${1:-10}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
fixture start
: > "$T/derive.ms"
for i in $(seq "$RUNS"); do
  answer_pins "$PIN"
  t0=$(now_ms)
  card derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 10 > /dev/null 2> "$T/m.err" || fail "derive $i"
  echo $(( $(now_ms) - t0 )) >> "$T/derive.ms"
done
: > "$T/late.ms"
for i in $(seq "$RUNS"); do
  fixture pull
  answer_pins "$PIN"
  start_card late derive --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" --card-wait 20
  pid=$BG
  sleep 0.3
  fixture insert                 # returns once pcsc-wait sees the card
  t0=$(now_ms)
  wait "$pid" || fail "late derive $i"
  echo $(( $(now_ms) - t0 )) >> "$T/late.ms"
done
stats() { sort -n "$1" | awk '{a[NR]=$1} END {printf "min %d ms, median %d ms, max %d ms (n=%d)\n", a[1], a[int((NR+1)/2)], a[NR], NR}'; }
echo "card derive, PIN answered at once: $(stats "$T/derive.ms")"
echo "late card present -> passphrase printed: $(stats "$T/late.ms")"
echo "APDUs the card received in all: $(wc -l < "$T/fx/apdu.log") ($(apdus 88) challenges for $((RUNS * 2)) derives)"
