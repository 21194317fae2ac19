#!/bin/bash
# SPDX-License-Identifier: MIT
# enroll with the real virtual card inserted late (issue 16): it says that it waits for a
# card, then that it found one and waits for the PIN, then that the PIN came, each wait
# with one line when it starts and one when it ends (stderr is not a terminal here), every
# line with the "crypt-agent enroll: " prefix; the summary counts the one card operation.
# Private mount namespace (tmpfs on /run/systemd), session keyring, private pcscd + card.
NEEDS="cryptsetup"; . "$(dirname "$0")/../smartcard/isolated.sh"; isolate "$0" "$@"
: "${CRYPT_AGENT_BIN:?CRYPT_AGENT_BIN not set}"
: "${CRYPT_AGENT_SOURCE_DIR:?CRYPT_AGENT_SOURCE_DIR not set}"
CARD_TOOL=$CRYPT_AGENT_BIN
. "$CRYPT_AGENT_SOURCE_DIR/tests/smartcard/lib.sh"
ASK=$PRIVATE_ASK
. "$CRYPT_AGENT_SOURCE_DIR/tests/luks/card-volumes.sh"
P="crypt-agent enroll: "
R="Virtual PCD 00 00"

fixture start
fixture pull
printf '%s\n' "$PERSON" | "$CRYPT_AGENT_BIN" --ask-dir "$ASK" enroll --passphrase-stdin --card-luks1-dir "$T/store" \
    --cache-dir "$T/locks" --card-wait 60 "${V[0]}" > "$T/enroll.out" 2> "$T/enroll.err" &
pid=$!; PIDS+=("$pid")
wait_for 20 grep -qx "${P}waiting for a card in any reader (up to 60 s)" "$T/enroll.err" \
  || fail "no card wait line: $(cat "$T/enroll.err")"
grep -q "found a card" "$T/enroll.err" && fail "a card was found while none was in the reader"
ok "with the reader empty it says it waits for a card"

fixture insert
answer_pins "$PIN"
wait "$pid" || fail "enroll: $(cat "$T/enroll.err")"
# The order of what it said: card wait, card found, PIN wait, PIN entered, summary.
want=("waiting for a card in any reader (up to 60 s)"
      "found a card in reader \"$R\""
      "waiting for the PIN of the card in reader \"$R\" (asked through ask-password) (up to 180 s)"
      "PIN entered"
      "1 of 1 volumes done, 0 failed; card operations: 1")
line=0
for w in "${want[@]}"; do
  n=$(grep -nxF -- "$P$w" "$T/enroll.err" | head -1 | cut -d: -f1)
  [ -n "$n" ] && [ "$n" -gt "$line" ] || fail "'$w' missing or out of order: $(cat "$T/enroll.err")"
  line=$n
done
bad=$(grep -v "^$P" "$T/enroll.err" || true)
[ -z "$bad" ] || fail "lines without the prefix: $bad"
[ "$(grep -c "waiting for" "$T/enroll.err")" = 2 ] || fail "more waits than the card's and the PIN's: $(cat "$T/enroll.err")"
opens_with "${V[0]}" "$T/person" || fail "the person's passphrase no longer opens ${V[0]}"
ok "card found, PIN asked and entered, each wait said when it starts and ends; card operations: 1"
no_secrets_in_logs "$PIN" "$PERSON"
