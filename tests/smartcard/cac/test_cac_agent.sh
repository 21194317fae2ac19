#!/bin/bash
# SPDX-License-Identifier: MIT
# crypt-agent's PKCS#11 backend against libcacard's emulated CAC card, read by the real OpenSC
# through p11-kit's proxy (the agent's default module), in a private pcscd:
#   enroll three LUKS images (LUKS2, LUKS2, LUKS1) with the CAC's key 0001: one PIN prompt;
#   serve answers three real systemd-ask-password questions with one PIN, and the answers open;
#   interop: the enrolled seed signed independently (pkcs11-tool --sign -m RSA-PKCS) and HKDF in
#     Python give the key the agent sent;
#   the card pulled while questions wait, re-inserted: answered;
#   pcscd restarted while the agent's PIN question waits: answered after it;
#   a wrong PIN: the next prompt starts with "Wrong PIN." (the CAC says CKR_GENERAL_ERROR and has
#     no retry counter);
#   no PIN, signature or key in any output.
# Private mount namespace (tmpfs on /run/systemd), session keyring.
NEEDS="systemd-ask-password cryptsetup python3"; . "$(dirname "$0")/../isolated.sh"; isolate "$0" "$@"
: "${CRYPT_AGENT_BIN:?CRYPT_AGENT_BIN not set}"
CARD_TOOL=$CRYPT_AGENT_BIN
. "$(dirname "$0")/lib.sh"
ASK=$PRIVATE_ASK
. "$(dirname "$0")/../../luks/card-volumes.sh"
WRONG=99999999
# OpenSC's CAC driver: token label = CN of cert1, key ids are 2 bytes.
URI="pkcs11:token=Test%20CAC%20cert1;id=%00%01"
cat > "$T/agent.conf" <<CONF
card-enable = yes
card-uri = $URI
card-luks1-dir = $T/store
CONF
agent() { "$CRYPT_AGENT_BIN" --config "$T/agent.conf" --keyring session --cache-dir "$T/cache" "$@"; }

# Does this build have the PKCS#11 backend (the card-uri setting)?
echo "card-uri = $URI" > "$T/probe.conf"
if ! "$CRYPT_AGENT_BIN" --config "$T/probe.conf" --keyring session --cache-dir "$T/cache" cache status \
     > /dev/null 2> "$T/probe.err"; then
  grep -q 'probe.conf:1: unknown setting' "$T/probe.err" \
    && { echo "SKIP: this crypt-agent has no PKCS#11 backend (card-uri): $(cat "$T/probe.err")" >&2; exit 77; }
  fail "crypt-agent refused card-uri: $(cat "$T/probe.err")"
fi
agent cache status > /dev/null 2> "$T/probe.err" || fail "crypt-agent refused the configuration: $(cat "$T/probe.err")"
rm -f "$T/probe.err"
cac_start

# card list: the token through p11-kit's proxy, and the key's URI after a login.
answer_pins "$PIN"
"$CRYPT_AGENT_BIN" --ask-dir "$ASK" --log-level debug card list --login > "$T/list.out" 2> "$T/list.err" \
    || fail "card list: $(tail -5 "$T/list.err")"
grep -q 'token "Test CAC cert1"' "$T/list.out" || fail "card list does not show the CAC token: $(cat "$T/list.out")"
grep -q 'key pkcs11:.*token=Test%20CAC%20cert1;.*id=%00%01;type=private RSA-2048 usable' "$T/list.out" \
    || fail "card list does not show key 0001 as a usable RSA-2048 key: $(cat "$T/list.out")"
ok "card list: the CAC token and its key URIs through p11-kit"

: > "$T/prompts"
answer_pins "$PIN"
printf '%s\n' "$PERSON" | "$CRYPT_AGENT_BIN" --ask-dir "$ASK" --log-level debug enroll --passphrase-stdin \
    --card-uri "$URI" --card-luks1-dir "$T/store" --cache-dir "$T/locks" --card-wait 30 "${V[@]}" \
    > "$T/enroll.out" 2> "$T/enroll.err" || fail "enroll: $(tail -5 "$T/enroll.err")"
grep -q "3 of 3 volumes done, 0 failed" "$T/enroll.err" || fail "enroll summary: $(tail -3 "$T/enroll.err")"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "enroll: expected 1 PIN prompt, saw $(wc -l < "$T/prompts"): $(cat "$T/prompts")"
for v in "${V[@]}"; do opens_with "$v" "$T/person" || fail "the person's passphrase no longer opens $v"; done
ok "enrolled three volumes (LUKS2, LUKS2, LUKS1) with the CAC key: one PIN prompt"

# serve_answers TAG [ACTION]: a fresh agent, three real questions, answers in $T/TAG.N; ACTION
# runs while they wait (before the PIN is given, which it gives itself).
start_agent() {
  "$CRYPT_AGENT_BIN" --config "$T/agent.conf" --keyring session --cache-dir "$T/cache.$1" --log-level debug serve \
      > "$T/serve.$1.out" 2> "$T/serve.$1.err" &
  AGENT=$!; PIDS+=("$AGENT")
  wait_for 10 grep -q 'watching' "$T/serve.$1.err" || fail "agent did not start: $(tail -5 "$T/serve.$1.err")"
}
stop_agent() {   # the module is finalized on its thread: a clean exit
  local rc=0
  kill -TERM "$AGENT"; wait "$AGENT" 2>/dev/null || rc=$?
  [ $rc = 0 ] || fail "the agent exited with $rc after SIGTERM"
}
collect() {   # collect TAG: wait for the three answers, check they open
  local i
  for i in 0 1 2; do
    wait "${ASKERS[$i]}" || fail "$1: no answer for ${V[$i]}: $(tail -5 "$T/serve.$1.err")"
    printf '%s' "$(cat "$T/$1.$i")" > "$T/$1.$i.key"
    opens_with "${V[$i]}" "$T/$1.$i.key" || fail "$1: the answer for ${V[$i]} does not open it"
  done
}
flush() { "$CRYPT_AGENT_BIN" --keyring session --cache-dir "$T/cache" cache flush > /dev/null 2>&1 || true; }

: > "$T/prompts"; flush
start_agent one
ask_volumes 60 one "cryptsetup:${V[0]}" "cryptsetup:${V[1]}" "cryptsetup:${V[2]}"
answer_pins "$PIN"
collect one
stop_agent
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "serve: expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
! cmp -s "$T/one.0.key" "$T/one.1.key" || fail "two volumes got the same key"
ok "serve: one PIN answered three real systemd-ask-password questions; each answer opens its volume"

# Interop with the seed's design: the enrolled seed of volume 0, signed by OpenSC on its own,
# through the HKDF of smartcard/derive.hpp in Python, is the key the agent sent.
python3 - "${V[0]}" > "$T/seed0.hex" <<'PY' || fail "no crypt-agent token in ${V[0]}"
import json, subprocess, sys
meta = json.loads(subprocess.check_output(["cryptsetup", "luksDump", "--dump-json-metadata", sys.argv[1]], text=True))
tok = [t for t in meta["tokens"].values() if t.get("type") == "crypt-agent"][0]
assert tok["version"] == 2 and tok["kind"] == "pkcs11" and tok["key"].startswith("pkcs11:"), tok
print(tok["current"]["seed"])
PY
xxd -r -p "$T/seed0.hex" > "$T/seed0.bin"
p11_pin "$P11_PROXY" "$PIN" --token-label "$CAC_LABEL" --sign -m RSA-PKCS --id 0001 -i "$T/seed0.bin" -o "$T/sig0.bin" \
    > "$T/sig0.log" 2>&1 || fail "pkcs11-tool --sign: $(cat "$T/sig0.log")"
SIG=$(xxd -p -c 1000 "$T/sig0.bin")
want=$(expected_pass "$SIG" "$(cat "$T/seed0.hex")" "$(cryptsetup luksUUID "${V[0]}")")
[ "$want" = "$(cat "$T/one.0.key")" ] || fail "HKDF over pkcs11-tool's RSA-PKCS signature is not the key the agent sent"
ok "interop: pkcs11-tool --sign -m RSA-PKCS over the enrolled seed + HKDF (Python) = the agent's key"

# The card pulled while the questions wait; re-inserted, they are answered.
: > "$T/prompts"; flush
fixture pull
start_agent pulled
ask_volumes 60 pulled "cryptsetup:${V[0]}" "cryptsetup:${V[1]}" "cryptsetup:${V[2]}"
answer_pins "$PIN"
sleep 2
for i in 0 1 2; do [ ! -s "$T/pulled.$i" ] || fail "${V[$i]} answered without a card"; done
fixture insert
collect pulled
stop_agent
ok "card pulled while three questions waited: re-inserted, all three answered"

# pcscd restarted while the agent's PIN question waits: the module is initialized again.
: > "$T/prompts"; flush
start_agent restart
ask_volumes 60 restart "cryptsetup:${V[0]}" "cryptsetup:${V[1]}" "cryptsetup:${V[2]}"
wait_for 20 bash -c "grep -l '^Id=crypt-agent:pin:' '$ASK'/ask.* > /dev/null 2>&1" || fail "no PIN question: $(tail -5 "$T/serve.restart.err")"
fixture restart-pcscd
# The PIN typed after the restart; if the agent must ask again on the new connection, the
# second question is answered too (the count is reported).
answer_pins "$PIN" "$PIN"
PINNER=${PIDS[-1]}
collect restart
stop_agent
kill -TERM "$PINNER" 2>/dev/null || true; wait "$PINNER" 2>/dev/null || true   # no second question came
ok "pcscd restarted under the PIN question: all three answered ($(wc -l < "$T/prompts") PIN prompt(s))"

# A wrong PIN, then the right one: the second prompt says so.
: > "$T/prompts"; flush
start_agent wrong
ask_volumes 60 wrong "cryptsetup:${V[0]}" "cryptsetup:${V[1]}" "cryptsetup:${V[2]}"
answer_pins "$WRONG" "$PIN"
collect wrong
stop_agent
mapfile -t prompts < "$T/prompts"
[ ${#prompts[@]} = 2 ] || fail "expected 2 PIN prompts, got ${#prompts[@]}: $(cat "$T/prompts")"
[[ ${prompts[0]} != "Wrong PIN."* ]] || fail "first prompt: ${prompts[0]}"
[[ ${prompts[1]} == "Wrong PIN."* ]] || fail "second prompt: ${prompts[1]}"
ok "a wrong PIN: the next prompt reads '${prompts[1]}'"

keys=()
for f in "$T"/*.key; do keys+=("$(cat "$f")"); done
for f in "$T"/*.out "$T"/*.err "$T"/*.log "$T"/fx/*.log "$T/prompts"; do
  [ -f "$f" ] || continue
  for s in "$PIN" "$WRONG" "$SIG" "${keys[@]}"; do
    if grep -qiF -- "$s" "$f"; then fail "a secret appears in $f"; fi
  done
done
ok "no PIN, signature or key in any output or log"
