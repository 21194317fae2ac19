#!/bin/bash
# SPDX-License-Identifier: MIT
# The acceptance path with the real virtual card and the real binary:
#   crypt-agent enroll three volumes (LUKS2, LUKS2, LUKS1): one PIN prompt, one
#     card session (the determinism check's two challenges), the person's
#     passphrase still opens;
#   crypt-agent serve answers real systemd-ask-password questions for them from
#     the seed records, and the answers open the volumes;
#   crypt-agent rotate: one PIN prompt, one session (old and new seed); the
#     keys served before no longer open, a new serve's answers do;
#   a rotate aborted in its window (fault injection after step 4): the record
#     names both generations, serve offers both and both open, and the next
#     rotate finishes the interrupted one without a leak.
# Private mount namespace (tmpfs on /run/systemd), session keyring, private
# pcscd + card (tests/smartcard/fixture).
#
# usage: card_enroll_serve_rotate.sh LUKS_TOOL [--with-serve]
# Without --with-serve the keys are checked with LUKS_TOOL's software
# computation of the fixture card (an independent oracle for the card path);
# with it, through a real `crypt-agent serve` (exit 77 while this build's agent
# does not know the card-* settings).
NEEDS="systemd-ask-password cryptsetup"; . "$(dirname "$0")/../smartcard/isolated.sh"; isolate "$0" "$@"
: "${CRYPT_AGENT_BIN:?CRYPT_AGENT_BIN not set}"
: "${CRYPT_AGENT_SOURCE_DIR:?CRYPT_AGENT_SOURCE_DIR not set}"
LUKS_TOOL=${1:?usage: $0 LUKS_TOOL [--with-serve]}
WITH_SERVE=${2:-}
CARD_TOOL=$CRYPT_AGENT_BIN
. "$CRYPT_AGENT_SOURCE_DIR/tests/smartcard/lib.sh"
ASK=$PRIVATE_ASK

. "$CRYPT_AGENT_SOURCE_DIR/tests/luks/card-volumes.sh"
STORE=(--card-luks1-dir "$T/store" --cache-dir "$T/locks")
cat > "$T/agent.conf" <<CONF
card-enable = yes
card-luks1-dir = $T/store
CONF

# serve_answers TAG: a fresh agent answers one question per volume; answers in $T/TAG.N
# A fresh boot: nothing cached from an earlier serve (the cache lives in this
# test's session keyring, shared by the agents it starts).
flush_cache() { "$CRYPT_AGENT_BIN" --keyring session --cache-dir "$T/cache" cache flush > /dev/null 2>&1 || fail "cache flush"; }

serve_answers() {
  local tag=$1
  flush_cache
  serve_volumes "$tag" 5 30
  kill -TERM "$AGENT"; wait "$AGENT" 2>/dev/null || true
}

if [ "$WITH_SERVE" = --with-serve ]; then
  if ! "$CRYPT_AGENT_BIN" --config "$T/agent.conf" --keyring session --cache-dir "$T/probe" cache status \
       > /dev/null 2> "$T/probe.err"; then
    grep -q "card-" "$T/probe.err" && { echo "SKIP: this crypt-agent does not know the card-* settings yet: $(cat "$T/probe.err")" >&2; exit 77; }
    fail "crypt-agent refused the configuration: $(cat "$T/probe.err")"
  fi
  rm -f "$T/probe.err"
fi
# keys_now TAG: each volume's current agent key, into $T/TAG.N
keys_now() {
  local tag=$1 i
  if [ "$WITH_SERVE" = --with-serve ]; then serve_answers "$tag"; return; fi
  for i in 0 1 2; do "$LUKS_TOOL" key --card-luks1-dir "$T/store" "${V[$i]}" > "$T/$tag.$i" || fail "no key for ${V[$i]}"; done
}

fixture start
answer_pins "$PIN"
printf '%s\n' "$PERSON" | "$CRYPT_AGENT_BIN" --ask-dir "$ASK" enroll --passphrase-stdin "${STORE[@]}" --card-wait 10 "${V[@]}" \
    > "$T/enroll.out" 2> "$T/enroll.err" || fail "enroll: $(cat "$T/enroll.err")"
grep -q "3 of 3 volumes done, 0 failed; card operations: 1" "$T/enroll.err" || fail "enroll summary: $(tail -2 "$T/enroll.err")"
[ "$(apdus 88)" = 2 ] || fail "enrol: expected 2 challenges (determinism check), card saw $(apdus 88)"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "enrol: expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
for v in "${V[@]}"; do opens_with "$v" "$T/person" || fail "the person's passphrase no longer opens $v"; done
ok "enrolled 3 volumes: one PIN prompt, one session, two challenges; the person's passphrase still opens"

keys_now gen1
for i in 0 1 2; do
  opens_with "${V[$i]}" "$T/gen1.$i" || fail "the agent key (${WITH_SERVE:-oracle}) does not open ${V[$i]}"
done
[ "$(cat "$T/gen1.0")" != "$(cat "$T/gen1.1")" ] || fail "two volumes got the same key"
ok "the card's keys open all three volumes (${WITH_SERVE:-software oracle of the card})"

: > "$T/prompts"; before=$(apdus 88)
answer_pins "$PIN"
"$CRYPT_AGENT_BIN" --ask-dir "$ASK" rotate "${STORE[@]}" --card-wait 10 "${V[@]}" > "$T/rotate.out" 2> "$T/rotate.err" \
    || fail "rotate: $(cat "$T/rotate.err")"
grep -q "3 of 3 volumes done, 0 failed; card operations: 1" "$T/rotate.err" || fail "rotate summary: $(tail -2 "$T/rotate.err")"
[ $(( $(apdus 88) - before )) = 2 ] || fail "rotate: expected 2 challenges (old and new seed), card saw $(( $(apdus 88) - before ))"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "rotate: expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
for i in 0 1 2; do
  opens_with "${V[$i]}" "$T/gen1.$i" && fail "the key served before rotation still opens ${V[$i]}"
  opens_with "${V[$i]}" "$T/person" || fail "the person's passphrase no longer opens ${V[$i]}"
done
ok "rotated: one PIN prompt, one session; the old keys no longer open"

keys_now gen2
for i in 0 1 2; do
  opens_with "${V[$i]}" "$T/gen2.$i" || fail "after rotation the agent key does not open ${V[$i]}"
done
ok "after rotation the new keys open (${WITH_SERVE:-software oracle of the card})"

# The window of a rotation: abort right after the first volume's record names
# the new keyslot (step 4: intent, keyslot added, verified, record switched).
# Both generations open it now, and the next boot's agent offers both.
answer_pins "$PIN"
CRYPT_AGENT_FAULT_AFTER_STEP=4 "$CRYPT_AGENT_BIN" --ask-dir "$ASK" rotate "${STORE[@]}" --card-wait 10 "${V[@]}" \
    > "$T/window.out" 2> "$T/window.err" || true   # it aborts on purpose
grep -q "fault injection: abort after step 4" "$T/window.err" || { echo "SKIP: crypt-agent built without CRYPT_AGENT_FAULT_INJECTION" >&2; exit 77; }
"$LUKS_TOOL" check --card-luks1-dir "$T/store" --passphrase-file "$T/person" "${V[0]}" > "$T/window.check" \
    || fail "after the abort: $(cat "$T/window.check")"
grep -q 'record=\[3/slot[0-9]*,2/slot[0-9]*\]' "$T/window.check" || fail "record does not name both generations: $(cat "$T/window.check")"
if [ "$WITH_SERVE" = --with-serve ]; then
  flush_cache
  "$CRYPT_AGENT_BIN" --config "$T/agent.conf" --keyring session --cache-dir "$T/cache.window" --log-level debug serve \
      > "$T/serve.window.out" 2> "$T/serve.window.err" &
  AGENT=$!; PIDS+=("$AGENT")
  wait_for 5 grep -q 'watching' "$T/serve.window.err" || fail "agent did not start"
  answer_pins "$PIN"
  systemd-ask-password --no-tty --multiple --timeout=30 --id="cryptsetup:${V[0]}" "Passphrase:" > "$T/window.answers" 2>/dev/null \
      || fail "no answer in the window"
  kill -TERM "$AGENT"; wait "$AGENT" 2>/dev/null || true
  grep -q "answered with 2 candidate(s)" "$T/serve.window.err" || fail "the agent did not offer both generations: $(grep answered "$T/serve.window.err")"
  opened=0
  while IFS= read -r cand; do
    printf '%s' "$cand" > "$T/window.cand"
    opens_with "${V[0]}" "$T/window.cand" && opened=$((opened + 1))
  done < "$T/window.answers"
  [ $opened = 2 ] || fail "$opened of the 2 candidates offered in the window open ${V[0]}, want both"
  WINDOW_KEYS=$(cat "$T/window.answers")
  ok "in the rotation window the agent offers both generations, and both open"
fi
answer_pins "$PIN"
"$CRYPT_AGENT_BIN" --ask-dir "$ASK" rotate "${STORE[@]}" --card-wait 10 "${V[@]}" > "$T/after.out" 2> "$T/after.err" \
    || fail "rotate after the abort: $(cat "$T/after.err")"
grep -q "finished an interrupted rotation" "$T/after.err" || fail "no recovery reported: $(cat "$T/after.err")"
"$LUKS_TOOL" check --strict --card-luks1-dir "$T/store" --passphrase-file "$T/person" "${V[@]}" > "$T/after.check" \
    || fail "after the recovering rotate: $(cat "$T/after.check")"
for v in "${V[@]}"; do opens_with "$v" "$T/gen2.0" && [ "$v" = "${V[0]}" ] && fail "generation 2 still opens ${V[0]}"; done
ok "the next rotate finished the interrupted one; no leak"

no_secrets_in_logs "$PIN" "$PERSON" ${WINDOW_KEYS:-} "$(cat "$T"/gen1.0)" "$(cat "$T"/gen1.1)" "$(cat "$T"/gen1.2)" \
  "$(cat "$T"/gen2.0)" "$(cat "$T"/gen2.1)" "$(cat "$T"/gen2.2)"
