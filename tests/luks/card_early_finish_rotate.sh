#!/bin/bash
# SPDX-License-Identifier: MIT
# One boot with enrolled volumes and the real virtual card, end to end:
#   the initramfs instance (card-early, seeds read from the volumes' LUKS
#     headers, the volumes named by card-crypttab) asks for the PIN before
#     READY=1; one card session answers the volumes' seed and a fresh seed;
#   the card is pulled; the real root's instance answers all three volumes
#     (LUKS2, LUKS2, LUKS1) from the card's response in the handed-over cache;
#   `crypt-agent finish` flushes the cache and rotates to the fresh seed with
#     no card (and no PIN): the keys served this boot no longer open, the
#     person's passphrase still does, and the new keys (software oracle of the
#     card) open.
# Private mount namespace (tmpfs on /run/systemd), session keyring, private
# pcscd + card (tests/smartcard/fixture).
#
# usage: card_early_finish_rotate.sh LUKS_TOOL
NEEDS="systemd-ask-password cryptsetup"; . "$(dirname "$0")/../smartcard/isolated.sh"; isolate "$0" "$@"
: "${CRYPT_AGENT_BIN:?CRYPT_AGENT_BIN not set}"
: "${CRYPT_AGENT_SOURCE_DIR:?CRYPT_AGENT_SOURCE_DIR not set}"
LUKS_TOOL=${1:?usage: $0 LUKS_TOOL}
CARD_TOOL=$CRYPT_AGENT_BIN
. "$CRYPT_AGENT_SOURCE_DIR/tests/smartcard/lib.sh"
ASK=$PRIVATE_ASK

. "$CRYPT_AGENT_SOURCE_DIR/tests/luks/card-volumes.sh"
# As in a boot: the initramfs knows the root volume only (a); the real root's crypttab lists all.
printf 'a %s none\n' "${V[0]}" > "$T/crypttab.initrd"
printf 'a %s none\nb %s none\nc %s none\n' "${V[@]}" > "$T/crypttab"
for phase in initrd root; do
  cat > "$T/agent.$phase.conf" <<CONF
card-enable = yes
card-luks1-dir = $T/store
card-crypttab = $T/crypttab$([ $phase = initrd ] && echo .initrd)
card-early-wait = 20
CONF
done
COMMON=(--keyring session --cache-dir "$T/run" --log-level debug)

fixture start
answer_pins "$PIN"
printf '%s\n' "$PERSON" | "$CRYPT_AGENT_BIN" --ask-dir "$ASK" enroll --passphrase-stdin --card-luks1-dir "$T/store" \
    --cache-dir "$T/run" --card-wait 10 "${V[@]}" > "$T/enroll.out" 2> "$T/enroll.err" || fail "enroll: $(cat "$T/enroll.err")"
for i in 0 1 2; do "$LUKS_TOOL" key --card-luks1-dir "$T/store" "${V[$i]}" > "$T/gen1.$i" || fail "no key for ${V[$i]}"; done
: > "$T/prompts"; before=$(apdus 88)

notify_listener

# --- the initramfs ------------------------------------------------------------------
NOTIFY_SOCKET=$T/notify.sock "$CRYPT_AGENT_BIN" --config "$T/agent.initrd.conf" "${COMMON[@]}" serve --phase initramfs \
    > "$T/initrd.out" 2> "$T/initrd.err" &
AGENT=$!; PIDS+=("$AGENT")
wait_for 10 bash -c "grep -l '^Id=crypt-agent:pin:' $ASK/ask.* >/dev/null 2>&1" || fail "no PIN question at start-up"
! grep -q 'READY=1' "$T/notify.log" || fail "READY=1 before the PIN question was answered"
answer_pins "$PIN"
wait_for 10 grep -q 'READY=1' "$T/notify.log" || fail "no READY=1 after the PIN"
[ $(( $(apdus 88) - before )) = 2 ] || fail "expected 2 challenges (the volumes' seed, the fresh seed), saw $(( $(apdus 88) - before ))"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
ok "initramfs: the root volume's seed read from its header; one PIN, one session, 2 challenges (its seed, a fresh one), then READY=1"
kill -TERM "$AGENT"; wait "$AGENT" || fail "initramfs agent exit code $?"

# --- the real root, the card gone -----------------------------------------------------
fixture pull
"$CRYPT_AGENT_BIN" --config "$T/agent.root.conf" "${COMMON[@]}" serve --phase root > "$T/root.out" 2> "$T/root.err" &
AGENT=$!; PIDS+=("$AGENT")
wait_for 5 grep -q 'watching' "$T/root.err" || fail "root agent did not start"
ask_volumes 20 served "cryptsetup:${V[0]}" "cryptsetup:${V[1]}" "cryptsetup:${V[2]}"
for i in 0 1 2; do
  wait "${ASKERS[$i]}" || fail "no answer for ${V[$i]}: $(tail -5 "$T/root.err")"
  printf '%s' "$(cat "$T/served.$i")" > "$T/served.$i.key"
  opens_with "${V[$i]}" "$T/served.$i.key" || fail "the served key does not open ${V[$i]}"
  cmp -s "$T/served.$i.key" "$T/gen1.$i" || fail "the served key for ${V[$i]} is not the card's (oracle)"
done
[ "$(grep -c "the card's response is in the boot cache" "$T/root.err")" = 2 ] \
  || fail "the real root's agent did not derive b and c from the cached response"

kill -TERM "$AGENT"; wait "$AGENT" || fail "root agent exit code $?"
ok "real root, card pulled: a from its cached key, b (LUKS2) and c (LUKS1) derived from the cached response; all open"

# --- finish: flush, then rotate with no card ---------------------------------------------
before=$(apdus 88)
"$CRYPT_AGENT_BIN" --config "$T/agent.root.conf" "${COMMON[@]}" finish > "$T/finish.out" 2> "$T/finish.err" || fail "finish: $(cat "$T/finish.err")"
grep -q "rotating to the seed the card answered during this boot" "$T/finish.err" || fail "finish did not use the boot's fresh seed"
grep -q "3 of 3 volumes done, 0 failed; card operations: 0" "$T/finish.err" || fail "finish rotation summary: $(tail -3 "$T/finish.err")"
[ "$(apdus 88)" = "$before" ] || fail "finish went to the card"
keyctl show @s 2>/dev/null | grep -q 'crypt-agent:cache' && fail "the cache key is still in the keyring after finish"
for i in 0 1 2; do
  opens_with "${V[$i]}" "$T/gen1.$i" && fail "the key served this boot still opens ${V[$i]} after finish"
  opens_with "${V[$i]}" "$T/person" || fail "the person's passphrase no longer opens ${V[$i]}"
  "$LUKS_TOOL" key --card-luks1-dir "$T/store" "${V[$i]}" > "$T/gen2.$i" || fail "no new key for ${V[$i]}"
  opens_with "${V[$i]}" "$T/gen2.$i" || fail "the new key (software oracle) does not open ${V[$i]}"
  cmp -s "$T/gen1.$i" "$T/gen2.$i" && fail "the key did not change for ${V[$i]}"
done
ok "finish: cache flushed, rotated without the card; this boot's keys no longer open, the new ones and the person's do"
"$LUKS_TOOL" check --strict --card-luks1-dir "$T/store" --passphrase-file "$T/person" "${V[@]}" > "$T/check.out" \
    || fail "after finish: $(cat "$T/check.out")"
ok "no leaked keyslot, every record consistent"

no_secrets_in_logs "$PIN" "$PERSON" "$(cat "$T"/gen1.0)" "$(cat "$T"/gen1.1)" "$(cat "$T"/gen1.2)" \
  "$(cat "$T"/gen2.0)" "$(cat "$T"/gen2.1)" "$(cat "$T"/gen2.2)"
