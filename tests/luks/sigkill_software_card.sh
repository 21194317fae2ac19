#!/bin/bash
# SPDX-License-Identifier: MIT
# SIGKILL rotations at random instants (default 30 per type, LUKS2 and LUKS1,
# three volumes each: 60 in all).  Every odd iteration kills a second run too,
# which is then busy recovering the first.  After each kill: every volume opens
# with the key its record names or with the person's passphrase; then a rotate
# completes and no keyslot leaks.  Prints the counts of interrupted runs and of
# lockouts.  KILLS=n overrides the count per type; SEED=n makes it repeatable.
# Software card: computes what the virtual card answers (see software_card.hpp).
[ -d /dev/shm ] && export LUKS_TEST_TMP=${LUKS_TEST_TMP:-/dev/shm}
. "$(dirname "$0")/lib.sh"
need cryptsetup
KILLS=${KILLS:-30}
RANDOM=${SEED:-$$}
echo "random seed: ${SEED:-$$}"

interrupted=0 finished_before_kill=0 lockouts=0 key_failures=0

check_after_kill() {
    local what=$1 rc
    check "${V[@]}" > "$WORK/check.out"; rc=$?
    if [ $rc = 3 ]; then lockouts=$((lockouts + 1)); echo "LOCKOUT after $what:"; cat "$WORK/check.out"; fi
    if [ $rc = 4 ]; then key_failures=$((key_failures + 1)); echo "record key fails or leak after $what:"; cat "$WORK/check.out"; fi
}

# kill_at DELAY_MS: start a rotate, SIGKILL it after DELAY_MS.
kill_at() {
    local pid status
    "$TOOL" rotate "${S_OPTS[@]}" "${V[@]}" >> "$WORK/log" 2>&1 &
    pid=$!
    sleep "$(( $1 / 1000 )).$(printf '%03d' $(( $1 % 1000 )))"
    kill -KILL "$pid" 2>/dev/null
    { wait "$pid"; } 2>/dev/null; status=$?
    if [ $status = 137 ]; then interrupted=$((interrupted + 1)); else finished_before_kill=$((finished_before_kill + 1)); fi
}

run_type() {
    local type=$1 i start end span
    V=("$WORK/$type.a" "$WORK/$type.b" "$WORK/$type.c")
    for v in "${V[@]}"; do make_volume "$v" "$type"; done
    enroll "${V[@]}" >> "$WORK/log" 2>&1 || fail "$type: enrol"
    start=$(date +%s%N); rotate "${V[@]}" >> "$WORK/log" 2>&1 || fail "$type: first rotate"; end=$(date +%s%N)
    span=$(( (end - start) / 1000000 ))
    echo "$type: one rotate of 3 volumes takes ${span} ms; killing at 0..$((span * 11 / 10)) ms"
    for i in $(seq 1 "$KILLS"); do
        kill_at $(( RANDOM % (span * 11 / 10 + 1) ))
        check_after_kill "$type kill $i"
        if [ $((i % 2)) = 1 ]; then
            kill_at $(( RANDOM % (span * 11 / 10 + 1) ))
            check_after_kill "$type kill $i (second, during recovery)"
        fi
        rotate "${V[@]}" >> "$WORK/log" 2>&1 || fail "$type kill $i: the following rotate failed: $(tail -4 "$WORK/log")"
        check --strict "${V[@]}" > "$WORK/check.out" || fail "$type kill $i: leak after the completing rotate: $(cat "$WORK/check.out")"
    done
    for v in "${V[@]}"; do opens_with "$v" "$WORK/pass" || fail "$type: the person's passphrase no longer opens $v"; done
}

run_type luks2
run_type luks1
assert_no_secrets_in "$WORK/log"
echo "interrupted runs: $interrupted (plus $finished_before_kill that finished before the kill); lockouts: $lockouts; record-named keys failing: $key_failures"
[ $lockouts = 0 ] && [ $key_failures = 0 ] || fail "unsafe state after SIGKILL"
[ $interrupted -ge 50 ] || fail "only $interrupted runs were interrupted (want at least 50): raise KILLS"
echo "PASS: $interrupted rotations killed at random instants: no lockout, no leak"
