#!/bin/bash
# SPDX-License-Identifier: MIT
# card-early (issue 6, scenario 2's mechanism), against a private pcscd and the
# virtual card: the initramfs instance asks for the PIN at start-up, before
# telling systemd it is ready (Type=notify: systemd-cryptsetup waits for
# cryptsetup-pre.target, which the dracut module orders after the agent), so
# the PIN question is on the console before any disk's.  One PIN, one
# challenge derive the keys of all three configured volumes, although none has
# asked yet; the real root's instance, with the card gone, answers all three
# from the handed-over cache.  Without a card, READY=1 comes after
# card-early-wait, and the boot goes on to the passphrase prompts.
NEEDS="systemd-ask-password"; . "$(dirname "$0")/isolated.sh"; isolate "$0" "$@"
: "${CRYPT_AGENT_BIN:?CRYPT_AGENT_BIN not set}"
CARD_TOOL=$CRYPT_AGENT_BIN
. "$(dirname "$0")/lib.sh"
ASK=$PRIVATE_ASK

SEED=$(cat "$T/seed.hex")
conf() { card_volumes_conf "$T/agent.conf" "card-early-wait = $1"; }
AGENT_ARGS=(--config "$T/agent.conf" --keyring session --cache-dir "$T/cache" --log-level debug)

notify_listener
ready_count() { grep -c 'READY=1' "$T/notify.log" || true; }
pin_question() { grep -l '^Id=crypt-agent:pin:' "$ASK"/ask.* >/dev/null 2>&1; }

# --- the card is in the reader at boot --------------------------------------------------
conf 30
fixture start
NOTIFY_SOCKET=$T/notify.sock "$CRYPT_AGENT_BIN" "${AGENT_ARGS[@]}" serve --phase initramfs \
    > "$T/initrd.out" 2> "$T/initrd.err" &
AGENT=$!; PIDS+=("$AGENT")
wait_for 10 pin_question || fail "no PIN question at start-up (card-early)"
[ "$(ready_count)" = 0 ] || fail "READY=1 was sent before the PIN question was answered"
sleep 1
[ "$(ready_count)" = 0 ] || fail "READY=1 was sent while the PIN question waits"
ok "at start-up, before any disk asks: the PIN question is up and READY=1 is held back"
answer_pins "$PIN"
wait_for 10 grep -q 'READY=1' "$T/notify.log" || fail "no READY=1 after the PIN was given"
grep -q 'card-early: the smartcard.s work is done' "$T/initrd.err" || fail "no log line saying the card's work is done"
ok "READY=1 once the card's work is done"
kill -TERM "$AGENT"; wait "$AGENT" || fail "initramfs agent exit code $? after SIGTERM"

# The real root: the card is gone; every volume answers from the handed-over cache.
fixture pull
"$CRYPT_AGENT_BIN" "${AGENT_ARGS[@]}" serve --phase root > "$T/root.out" 2> "$T/root.err" &
AGENT=$!; PIDS+=("$AGENT")
wait_for 5 grep -q 'watching' "$T/root.err" || fail "root agent did not start"
ask_volumes 15 ask cryptsetup:/dev/vol0 cryptsetup:/dev/vol1 cryptsetup:/dev/vol2
for i in 0 1 2; do
  wait "${ASKERS[$i]}" || fail "vol$i: no answer from the real root's agent"
  WANT[$i]=$(expected_pass "$LAB_RESPONSE" "$SEED" "${UUIDS[$i]}")
  [ "$(cat "$T/ask.$i")" = "${WANT[$i]}" ] || fail "vol$i: wrong passphrase"
done
[ "$(apdus 88)" = 1 ] || fail "expected 1 challenge in the whole boot, card saw $(apdus 88)"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
! grep -q 'asking the smartcard' "$T/root.err" || fail "the real root's agent went to the card"
ok "card removed after switch-root: all three volumes answered from the cache, 1 challenge, 1 PIN prompt"
kill -TERM "$AGENT"; wait "$AGENT" || fail "root agent exit code $? after SIGTERM"

# --- no card: the boot is held for card-early-wait, no longer ---------------------------
"$CRYPT_AGENT_BIN" --keyring session --cache-dir "$T/cache" cache flush > /dev/null 2>&1 || fail "cache flush failed"
conf 2
: > "$T/notify.log"
start=$(date +%s%N)
NOTIFY_SOCKET=$T/notify.sock "$CRYPT_AGENT_BIN" "${AGENT_ARGS[@]}" serve --phase initramfs \
    > "$T/nocard.out" 2> "$T/nocard.err" &
AGENT=$!; PIDS+=("$AGENT")
wait_for 15 grep -q 'READY=1' "$T/notify.log" || fail "no READY=1 without a card"
held=$(( ($(date +%s%N) - start) / 1000000 ))
[ $held -ge 1900 ] || fail "READY=1 after $held ms: card-early-wait = 2 s was not honoured"
grep -q 'card-early: no smartcard key within 2 s' "$T/nocard.err" || fail "no log line for the missing card"
ok "no card: READY=1 after $held ms (card-early-wait = 2 s), with a log line"
kill -TERM "$AGENT"; wait "$AGENT" || fail "agent exit code $? after SIGTERM"
no_secrets_in_logs "$PIN" "$LAB_RESPONSE" "${WANT[@]}"
