#!/bin/bash
# SPDX-License-Identifier: MIT
# crypt-agent serve answers cryptsetup: questions from the card (issue 4's
# acceptance): three real systemd-ask-password questions wait; the card comes
# 2 s later; one PIN prompt, one challenge, three different correct per-volume
# passphrases.  Then the card freezes: the watchdog fires, cached questions are
# still answered, and SIGTERM stops the agent.
# Runs in a private mount namespace (tmpfs on /run/systemd) and session keyring.
NEEDS="systemd-ask-password"; . "$(dirname "$0")/isolated.sh"; isolate "$0" "$@"
: "${CRYPT_AGENT_BIN:?CRYPT_AGENT_BIN not set}"
CARD_TOOL=$CRYPT_AGENT_BIN
. "$(dirname "$0")/lib.sh"
ASK=$PRIVATE_ASK

SEED=$(cat "$T/seed.hex")
card_volumes_conf "$T/agent.conf" "card-watchdog = 1"
AGENT_ARGS=(--config "$T/agent.conf" --keyring session --cache-dir "$T/cache" --log-level debug)
agent() { "$CRYPT_AGENT_BIN" "${AGENT_ARGS[@]}" "$@"; }

# Is the card source wired into this build's configuration and sources?
if ! agent cache status > "$T/probe.out" 2> "$T/probe.err"; then
  if grep -q 'card-' "$T/probe.err"; then
    echo "SKIP: this crypt-agent does not know the card-* settings yet (card source not registered):" >&2
    cat "$T/probe.err" >&2
    exit 77
  fi
  fail "crypt-agent refused the configuration: $(cat "$T/probe.err")"
fi
rm -f "$T/probe.err"

fixture start --no-card
# Started directly (not through the shell function) so that $! is the agent's own PID.
"$CRYPT_AGENT_BIN" "${AGENT_ARGS[@]}" serve > "$T/agent.out" 2> "$T/agent.err" &
AGENT=$!; PIDS+=("$AGENT")
wait_for 5 grep -q 'watching' "$T/agent.err" || fail "agent did not start"

ask_volumes 30 ask cryptsetup:/dev/vol0 cryptsetup:/dev/vol1 cryptsetup:/dev/vol2
sleep 2
for i in 0 1 2; do [ ! -s "$T/ask.$i" ] || fail "vol$i answered without a card"; done
answer_pins "$PIN"
fixture insert
for i in 0 1 2; do
  wait "${ASKERS[$i]}" || fail "vol$i: systemd-ask-password got no answer"
  want=$(expected_pass "$LAB_RESPONSE" "$SEED" "${UUIDS[$i]}")
  [ "$(cat "$T/ask.$i")" = "$want" ] || fail "vol$i: wrong passphrase"
  WANT[$i]=$want
done
[ "${WANT[0]}" != "${WANT[1]}" ] && [ "${WANT[1]}" != "${WANT[2]}" ] || fail "passphrases not distinct"
[ "$(apdus 88)" = 1 ] || fail "expected 1 challenge, card saw $(apdus 88)"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
ok "card inserted 2 s after three questions: all three answered, distinct and correct, 1 challenge, 1 PIN prompt"

# A frozen card: the watchdog fires, questions with cached answers are still answered.
kill -TERM "$AGENT"
wait_for 3 bash -c "! kill -0 $AGENT 2>/dev/null || grep -q '^State:.*zombie' /proc/$AGENT/status" \
  || fail "agent did not exit within 3 s of SIGTERM"
wait "$AGENT" || fail "agent exit code $? after SIGTERM"

# A new agent (no response remembered), the card frozen, one typed passphrase cached.
"$CRYPT_AGENT_BIN" --keyring session --cache-dir "$T/cache" cache flush > /dev/null 2>&1 || fail "cache flush failed"
printf 'typed-passphrase\n' | "$CRYPT_AGENT_BIN" --keyring session --cache-dir "$T/cache" cache put \
    --match 'cryptsetup:/dev/typed' > /dev/null 2> "$T/put.err" || fail "cache put failed"
fixture freeze
"$CRYPT_AGENT_BIN" "${AGENT_ARGS[@]}" serve > "$T/agent2.out" 2> "$T/agent2.err" &
AGENT=$!; PIDS+=("$AGENT")
wait_for 5 grep -q 'watching' "$T/agent2.err" || fail "second agent did not start"
systemd-ask-password --no-tty --timeout=8 --id="cryptsetup:/dev/vol2" "vol2 again:" > "$T/frozen.out" 2>/dev/null &
PIDS+=("$!")
wait_for 6 grep -q 'did not answer within 1000 ms' "$T/agent2.err" || fail "watchdog did not fire on the frozen card"
ok "frozen card: watchdog fired"
systemd-ask-password --no-tty --timeout=8 --id="cryptsetup:/dev/typed" "typed:" > "$T/typed.out" 2>/dev/null &
p=$!; PIDS+=("$p")
wait "$p" || fail "a cached question was not answered while the card hangs"
[ "$(cat "$T/typed.out")" = typed-passphrase ] || fail "wrong answer while the card hangs"
[ ! -s "$T/frozen.out" ] || fail "vol2 answered although the card hangs"
ok "while the card hangs, a cached question is answered"
kill -TERM "$AGENT"
wait_for 3 bash -c "! kill -0 $AGENT 2>/dev/null || grep -q '^State:.*zombie' /proc/$AGENT/status" \
  || fail "agent did not exit within 3 s of SIGTERM"
rc=0; wait "$AGENT" || rc=$?
[ $rc = 0 ] || fail "agent exit code $rc after SIGTERM"
ok "agent exits (code 0) on SIGTERM with a thread stuck in pcsc-lite"
fixture thaw
no_secrets_in_logs "$PIN" "$LAB_RESPONSE" "${WANT[@]}" typed-passphrase
