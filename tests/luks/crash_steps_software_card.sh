#!/bin/bash
# SPDX-License-Identifier: MIT
# Fault injection: abort() an enrolment, then a rotation, of three volumes right
# after step k, for every k until a run completes, on LUKS1 and on LUKS2.  After each crash (and
# after a second crash early in the recovering run): every volume opens with the
# key its record names or with the person's passphrase; then a rotate completes,
# nothing leaks, and the key from before the crash no longer opens.
# Needs a build with CRYPT_AGENT_FAULT_INJECTION (the default for tests).
# Software card: computes what the virtual card answers (see software_card.hpp).
[ -d /dev/shm ] && export LUKS_TEST_TMP=${LUKS_TEST_TMP:-/dev/shm}
. "$(dirname "$0")/lib.sh"
need cryptsetup

interrupted=0 lockouts=0 key_failures=0 steps_total=0

# Enrolled template volumes, copied fresh for each k.
prepare_template() {
    local type=$1
    mkdir -p "$WORK/tpl"
    for n in a b c; do make_volume "$WORK/tpl/$n.img" "$type"; done
    STORE="$WORK/tpl/store" enroll_tpl
}
enroll_tpl() { "$TOOL" enroll --passphrase-stdin --card-luks1-dir "$WORK/tpl/store" --cache-dir "$LOCKS" \
                 "$WORK/tpl/a.img" "$WORK/tpl/b.img" "$WORK/tpl/c.img" < "$WORK/pass" >/dev/null 2>&1 \
                 || fail "enrol of the template"; }

fresh_copy() {
    rm -rf "$WORK/run"; mkdir -p "$WORK/run"
    cp -a "$WORK/tpl/." "$WORK/run/"
    STORE="$WORK/run/store"; S_OPTS=(--card-luks1-dir "$STORE" --cache-dir "$LOCKS")
    V=("$WORK/run/a.img" "$WORK/run/b.img" "$WORK/run/c.img")
}

check_after_crash() {
    local what=$1 rc
    check "${V[@]}" > "$WORK/check.out"; rc=$?
    if [ $rc = 3 ]; then lockouts=$((lockouts + 1)); echo "LOCKOUT after $what:"; cat "$WORK/check.out"; fi
    if [ $rc = 4 ]; then key_failures=$((key_failures + 1)); echo "record key fails or leak after $what:"; cat "$WORK/check.out"; fi
}

run_type() {
    local type=$1 k rc
    rm -rf "$WORK/tpl"; prepare_template "$type"
    for k in $(seq 1 60); do
        fresh_copy
        for i in 0 1 2; do current_key "${V[$i]}" "$WORK/before.$i"; done
        CRYPT_AGENT_FAULT_AFTER_STEP=$k rotate "${V[@]}" > "$WORK/log.$type.$k" 2>&1; rc=$?
        if ! grep -q "fault injection: abort after step $k" "$WORK/log.$type.$k"; then
            [ $rc = 0 ] || fail "$type: run with k=$k neither crashed nor completed (rc $rc): $(cat "$WORK/log.$type.$k")"
            [ $k -gt 1 ] || { echo "SKIP: the tool was built without CRYPT_AGENT_FAULT_INJECTION"; exit 77; }
            echo "$type: a rotation of 3 volumes has $((k - 1)) durable steps; crashed after each"
            steps_total=$((steps_total + k - 1))
            return
        fi
        interrupted=$((interrupted + 1))
        check_after_crash "$type step $k"
        # Crash again at the first durable step of the recovering run.
        CRYPT_AGENT_FAULT_AFTER_STEP=1 rotate "${V[@]}" >> "$WORK/log.$type.$k" 2>&1
        if grep -q "fault injection: abort after step 1 " "$WORK/log.$type.$k"; then
            interrupted=$((interrupted + 1)); check_after_crash "$type step $k, then recovery step 1"
        fi
        rotate "${V[@]}" >> "$WORK/log.$type.$k" 2>&1 || fail "$type k=$k: the following rotate failed: $(tail -4 "$WORK/log.$type.$k")"
        check --strict "${V[@]}" > "$WORK/check.out" || fail "$type k=$k: leak or unfinished record after the completing rotate: $(cat "$WORK/check.out")"
        for i in 0 1 2; do
            opens_with "${V[$i]}" "$WORK/before.$i" && fail "$type k=$k: the key from before the crash still opens ${V[$i]}"
            opens_with "${V[$i]}" "$WORK/pass" || fail "$type k=$k: the person's passphrase no longer opens ${V[$i]}"
        done
        assert_no_secrets_in "$WORK/log.$type.$k" "$WORK"/before.*
    done
    fail "$type: the rotation never completed within 60 steps"
}

# Enrolment crashed after each of its steps: the person's passphrase opens
# throughout, and the next enrol finishes the job without a leak.
enroll_type() {
    local type=$1 k rc
    for k in $(seq 1 30); do
        rm -rf "$WORK/run"; mkdir -p "$WORK/run"
        STORE="$WORK/run/store"; S_OPTS=(--card-luks1-dir "$STORE" --cache-dir "$LOCKS")
        V=("$WORK/run/a.img" "$WORK/run/b.img" "$WORK/run/c.img")
        cp "$WORK/blank.$type" "${V[0]}"; cp "$WORK/blank.$type" "${V[1]}"; cp "$WORK/blank.$type" "${V[2]}"
        # three volumes need three UUIDs
        for v in "${V[@]}"; do cryptsetup luksUUID -q --uuid "$(cat /proc/sys/kernel/random/uuid)" "$v" || fail "luksUUID"; done
        CRYPT_AGENT_FAULT_AFTER_STEP=$k enroll "${V[@]}" > "$WORK/log.enroll.$type.$k" 2>&1; rc=$?
        if ! grep -q "fault injection: abort after step $k" "$WORK/log.enroll.$type.$k"; then
            [ $rc = 0 ] || fail "$type: enrol with k=$k neither crashed nor completed (rc $rc)"
            echo "$type: an enrolment of 3 volumes has $((k - 1)) durable steps; crashed after each"
            steps_total=$((steps_total + k - 1))
            return
        fi
        interrupted=$((interrupted + 1))
        for v in "${V[@]}"; do
            opens_with "$v" "$WORK/pass" || { lockouts=$((lockouts + 1)); echo "LOCKOUT: enrol $type step $k: $v"; }
        done
        enroll "${V[@]}" >> "$WORK/log.enroll.$type.$k" 2>&1 || fail "$type k=$k: the following enrol failed: $(tail -4 "$WORK/log.enroll.$type.$k")"
        check --strict "${V[@]}" > "$WORK/check.out" || fail "$type k=$k: after the following enrol: $(cat "$WORK/check.out")"
    done
    fail "$type: enrolment never completed within 30 steps"
}
make_volume "$WORK/blank.luks2" luks2
make_volume "$WORK/blank.luks1" luks1
enroll_type luks2
enroll_type luks1

run_type luks2
run_type luks1
echo "interrupted runs: $interrupted; lockouts: $lockouts; record-named keys failing: $key_failures"
[ $lockouts = 0 ] && [ $key_failures = 0 ] || fail "unsafe state after a crash"
echo "PASS: crash after each of $steps_total steps (enrol and rotate, LUKS1 and LUKS2, 3 volumes): no lockout, no leak"
