#!/bin/bash
# SPDX-License-Identifier: MIT
# The PKCS#11 backend against SoftHSM2 (real software nobody here wrote), with
# the real binary, real LUKS images and real systemd-ask-password questions:
#   enrol three volumes (LUKS2, LUKS2, LUKS1) with one PIN; serve answers the
#   three questions from one PIN; rotate with one PIN, the old keys close;
#   interop: pkcs11-tool's own signature (RSA) or ECDH (EC) of the enrolled seed,
#   through HKDF computed in Python, is the passphrase the agent sends;
#   a wrong PIN is refused and the next prompt says "Wrong PIN."; an ECDSA-only
#   key is refused at enrolment; a typed-passphrase serve never maps the module.
# usage: test_pkcs11_softhsm.sh rsa|ec
#   rsa: through p11-kit's proxy (softhsm2 registered in /usr/share/p11-kit/modules)
#   ec:  the module named directly with card-module
# Private mount namespace (tmpfs on /run/systemd), session keyring, private
# SOFTHSM2_CONF and token directory.
NEEDS="systemd-ask-password cryptsetup softhsm2-util pkcs11-tool python3"
. "$(dirname "$0")/isolated.sh"; isolate "$0" "$@"
: "${CRYPT_AGENT_BIN:?CRYPT_AGENT_BIN not set}"
KIND=${1:?usage: $0 rsa|ec}
CARD_TOOL=$CRYPT_AGENT_BIN
PCSC_WAIT=${PCSC_WAIT:-/bin/true}
. "$(dirname "$0")/lib.sh"
ASK=$PRIVATE_ASK
. "$(dirname "$0")/../luks/card-volumes.sh"

SOFTHSM=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do [ -f "$m" ] && SOFTHSM=$m && break; done
[ -n "$SOFTHSM" ] || { echo "SKIP: libsofthsm2.so (package softhsm2) missing" >&2; exit 77; }
PROXY=$(pkg-config --variable=proxy_module p11-kit-1 2>/dev/null || true)

export SOFTHSM2_CONF="$T/softhsm2.conf"
mkdir -p "$T/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
  "$T/tokens" > "$SOFTHSM2_CONF"
SO_PIN=87654321
TOKEN="crypt agent $KIND"   # a space: the URI percent-encodes it
softhsm2-util --init-token --free --label "$TOKEN" --so-pin $SO_PIN --pin "$PIN" > "$T/init.log" 2>&1 || fail "init token"
p11() { pkcs11-tool --module "$SOFTHSM" --token-label "$TOKEN" "$@"; }
if [ "$KIND" = rsa ]; then
  [ -n "$PROXY" ] && [ -f "$PROXY" ] || { echo "SKIP: p11-kit-proxy.so (package p11-kit) missing" >&2; exit 77; }
  grep -qs softhsm /usr/share/p11-kit/modules/*.module /etc/pkcs11/modules/*.module \
    || { echo "SKIP: softhsm2 is not registered with p11-kit (softhsm2.module)" >&2; exit 77; }
  p11 --login --pin "$PIN" --keypairgen --key-type rsa:2048 --id 01 --label seedkey > "$T/keygen.log" 2>&1 || fail "keygen"
  MODULE_SETTING=()    # p11-kit's proxy, the default
  MAPPED=libp11-kit   # p11-kit-proxy.so is a link to libp11-kit.so.0
else
  p11 --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --id 01 --label seedkey --usage-derive \
    > "$T/keygen.log" 2>&1 || fail "keygen"
  p11 --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --id 02 --label signonly --usage-sign \
    > "$T/keygen2.log" 2>&1 || fail "keygen ecdsa"
  MODULE_SETTING=(--card-module "$SOFTHSM")
  MAPPED=libsofthsm2
fi
URI="pkcs11:token=crypt%20agent%20$KIND;id=%01"
cat > "$T/agent.conf" <<CONF
card-enable = yes
card-uri = $URI
card-luks1-dir = $T/store
CONF
[ "$KIND" = ec ] && echo "card-module = $SOFTHSM" >> "$T/agent.conf"
STORE=(--card-luks1-dir "$T/store" --cache-dir "$T/locks")

# card list: the token and its key (after a login through ask-password).
: > "$T/prompts"
answer_pins "$PIN"
"$CRYPT_AGENT_BIN" --ask-dir "$ASK" card list --login "${MODULE_SETTING[@]}" > "$T/list.out" 2> "$T/list.err" \
  || fail "card list: $(cat "$T/list.err")"
grep -q "token \"$TOKEN\"" "$T/list.out" || fail "card list does not show the token: $(cat "$T/list.out")"
if [ "$KIND" = rsa ]; then want="RSA-2048 usable"; else want="EC P-256 usable"; fi
grep -q "key pkcs11:.*token=crypt%20agent%20$KIND;object=seedkey;id=%01;type=private $want" "$T/list.out" \
  || fail "card list does not show the key as '$want': $(cat "$T/list.out")"
if [ "$KIND" = ec ]; then
  grep -q "object=signonly.* not usable: ECDSA only" "$T/list.out" || fail "card list: ECDSA-only key not marked: $(cat "$T/list.out")"
fi
ok "card list: token, key URI, type and usability ($KIND)"
if [ "$KIND" = rsa ]; then
  # auto through the proxy: one SoftHSM token with one key (p11-kit's key-less trust tokens do not count).
  "$CRYPT_AGENT_BIN" card status --card-uri auto > "$T/status.out" 2> "$T/status.err" \
    || fail "card status --card-uri auto: $(cat "$T/status.out" "$T/status.err")"
  grep -q "key pkcs11:.*token=crypt%20agent%20rsa;object=seedkey;id=%01;type=private RSA-2048 usable" "$T/status.out" \
    || fail "card status --card-uri auto: $(cat "$T/status.out")"
  ok "card status: card-uri auto finds the one token and its key through the proxy"
fi

# An ECDSA-only key is refused at enrolment, with the reason.
if [ "$KIND" = ec ]; then
  answer_pins "$PIN"
  if printf '%s\n' "$PERSON" | "$CRYPT_AGENT_BIN" --ask-dir "$ASK" enroll --passphrase-stdin "${STORE[@]}" \
       --card-module "$SOFTHSM" --card-uri "pkcs11:token=crypt%20agent%20ec;id=%02" --card-wait 20 "${V[0]}" \
       > "$T/ecdsa.out" 2> "$T/ecdsa.err"; then
    fail "enrolment with an ECDSA-only key succeeded"
  fi
  grep -q "ECDSA only" "$T/ecdsa.err" || fail "no clear refusal of the ECDSA-only key: $(cat "$T/ecdsa.err")"
  opens_with "${V[0]}" "$T/person" || fail "the refused enrolment broke ${V[0]}"
  ok "an ECDSA-only key is refused: $(grep -o 'ECDSA only[^;]*' "$T/ecdsa.err" | head -1)"
fi

# Enrolment: three volumes, one PIN.
: > "$T/prompts"
answer_pins "$PIN"
printf '%s\n' "$PERSON" | "$CRYPT_AGENT_BIN" --ask-dir "$ASK" enroll --passphrase-stdin "${STORE[@]}" \
    "${MODULE_SETTING[@]}" --card-uri "$URI" --card-wait 30 "${V[@]}" > "$T/enroll.out" 2> "$T/enroll.err" \
  || fail "enroll: $(cat "$T/enroll.err")"
grep -q "3 of 3 volumes done, 0 failed" "$T/enroll.err" || fail "enroll summary: $(tail -3 "$T/enroll.err")"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "enrol: expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
grep -q "token \"$TOKEN\"" "$T/prompts" || fail "the PIN prompt does not name the token: $(cat "$T/prompts")"
for v in "${V[@]}"; do opens_with "$v" "$T/person" || fail "the person's passphrase no longer opens $v"; done
ok "enrolled 3 volumes with one PIN prompt: $(head -1 "$T/prompts")"

# The record: version 2, kind pkcs11, the key URI.
cryptsetup token export --token-id 0 "${V[0]}" > "$T/token.json" 2>/dev/null \
  || { for id in 1 2 3; do cryptsetup token export --token-id $id "${V[0]}" > "$T/token.json" 2>/dev/null && break; done; }
python3 - "$T/token.json" "$URI" <<'PY' || fail "LUKS2 record: $(cat "$T/token.json")"
import json, sys
t = json.load(open(sys.argv[1]))
assert t["type"] == "crypt-agent" and t["version"] == 2 and t["kind"] == "pkcs11", t
assert t["key"] == sys.argv[2], t["key"]
PY
ok "the record is version 2, kind pkcs11, key $URI"

flush_cache() { "$CRYPT_AGENT_BIN" --keyring session --cache-dir "$T/cache" cache flush > /dev/null 2>&1 || fail "cache flush"; }
# serve_answers TAG: a fresh agent answers one real question per volume, from one PIN.
serve_answers() {
  local tag=$1 rc
  flush_cache
  : > "$T/prompts"
  serve_volumes "$tag" 10 60
  grep -q "$MAPPED" "/proc/$AGENT/maps" || fail "the serving agent does not map $MAPPED (control)"
  # The module is finalized on its own thread before the agent exits: a clean exit, no crash.
  kill -TERM "$AGENT"; rc=0; wait "$AGENT" 2>/dev/null || rc=$?
  [ $rc = 0 ] || fail "$tag: the agent exited with $rc after SIGTERM: $(tail -5 "$T/serve.$tag.err")"
  [ "$(wc -l < "$T/prompts")" = 1 ] || fail "$tag: expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
}

serve_answers gen1
for i in 0 1 2; do opens_with "${V[$i]}" "$T/gen1.$i" || fail "the agent's answer does not open ${V[$i]}"; done
ok "serve: three real questions answered from one PIN; the answers open LUKS2, LUKS2, LUKS1"

# Interop: pkcs11-tool computes the card's response itself; Python's HKDF over it
# must give the passphrase the agent sent for the LUKS1 volume.
python3 - "$T/store" > "$T/seed.hex" <<'PY' || fail "no seed in the LUKS1 store"
import glob, json, sys
rec = [f for f in glob.glob(sys.argv[1] + "/*.rec")][0]
print(json.loads(open(rec).readline())["current"]["seed"])
PY
xxd -r -p "$T/seed.hex" > "$T/seed.bin"
if [ "$KIND" = rsa ]; then
  p11 --login --pin "$PIN" --sign -m RSA-PKCS --id 01 --input-file "$T/seed.bin" --output-file "$T/resp.bin" \
    > "$T/p11sign.log" 2>&1 || fail "pkcs11-tool --sign: $(cat "$T/p11sign.log")"
else
  # The seed is the ephemeral public point; pkcs11-tool takes the peer as a DER SubjectPublicKeyInfo.
  python3 - "$T/seed.bin" "$T/peer.der" <<'PY'
import sys
point = open(sys.argv[1], "rb").read()
assert len(point) == 65 and point[0] == 4
prefix = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
open(sys.argv[2], "wb").write(prefix + point)
PY
  p11 --login --pin "$PIN" --derive -m ECDH1-DERIVE --id 01 --input-file "$T/peer.der" --output-file "$T/resp.bin" \
    > "$T/p11derive.log" 2>&1 || fail "pkcs11-tool --derive: $(cat "$T/p11derive.log")"
fi
uuid=$(cryptsetup luksUUID "${V[2]}")
want=$(expected_pass "$(xxd -p "$T/resp.bin" | tr -d '\n')" "$(cat "$T/seed.hex")" "$uuid")
[ "$want" = "$(cat "$T/gen1.2")" ] || fail "interop: pkcs11-tool + HKDF gives another passphrase than the agent's"
ok "interop: pkcs11-tool's own $([ "$KIND" = rsa ] && echo 'RSA-PKCS signature' || echo 'ECDH derivation') of the seed + HKDF = the agent's answer"

# Rotation: one PIN; the old keys no longer open; a new serve's answers do.
: > "$T/prompts"
answer_pins "$PIN"
"$CRYPT_AGENT_BIN" --ask-dir "$ASK" --config "$T/agent.conf" rotate --cache-dir "$T/locks" --card-wait 30 "${V[@]}" \
    > "$T/rotate.out" 2> "$T/rotate.err" || fail "rotate: $(cat "$T/rotate.err")"
grep -q "3 of 3 volumes done, 0 failed; card operations: 1" "$T/rotate.err" || fail "rotate summary: $(tail -3 "$T/rotate.err")"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "rotate: expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
for i in 0 1 2; do
  opens_with "${V[$i]}" "$T/gen1.$i" && fail "the key served before rotation still opens ${V[$i]}"
  opens_with "${V[$i]}" "$T/person" || fail "the person's passphrase no longer opens ${V[$i]}"
done
serve_answers gen2
for i in 0 1 2; do opens_with "${V[$i]}" "$T/gen2.$i" || fail "after rotation the agent's answer does not open ${V[$i]}"; done
ok "rotated with one PIN; old keys closed, the new answers open"

# One boot: the initramfs instance (card-early) asks for the PIN before READY=1,
# one login answers the root volume's seed and a fresh one (for an EC key a new
# point on the key's curve); the real root answers all three with the token
# gone (from the responses in the boot cache); finish rotates with no token.
printf 'a %s none\n' "${V[0]}" > "$T/crypttab.initrd"
printf 'a %s none\nb %s none\nc %s none\n' "${V[@]}" > "$T/crypttab"
cp "$T/agent.conf" "$T/agent.initrd.conf"; cp "$T/agent.conf" "$T/agent.root.conf"
printf 'card-crypttab = %s\ncard-early-wait = 30\n' "$T/crypttab.initrd" >> "$T/agent.initrd.conf"
printf 'card-crypttab = %s\n' "$T/crypttab" >> "$T/agent.root.conf"
notify_listener
# one_boot TAG: the initramfs instance with the root volume only, then the real
# root answering all three from the boot cache with the token gone, then finish.
one_boot() {
  local tag=$1 i
  # Each boot has its own /run (its cache and its finish marker).
  local COMMON=(--keyring session --cache-dir "$T/run.$tag" --log-level debug)
  flush_cache
  : > "$T/prompts"
  : > "$T/notify.log"   # the listener appends: this boot's lines only
  NOTIFY_SOCKET=$T/notify.sock "$CRYPT_AGENT_BIN" --config "$T/agent.initrd.conf" "${COMMON[@]}" serve --phase initramfs \
      > "$T/initrd.$tag.out" 2> "$T/initrd.$tag.err" &
  AGENT=$!; PIDS+=("$AGENT")
  wait_for 20 bash -c "grep -l '^Id=crypt-agent:pin:' $ASK/ask.* >/dev/null 2>&1" || fail "no PIN question at start-up: $(tail -5 "$T/initrd.$tag.err")"
  ! grep -q 'READY=1' "$T/notify.log" || fail "READY=1 before the PIN question was answered"
  answer_pins "$PIN"
  wait_for 20 grep -q 'READY=1' "$T/notify.log" || fail "no READY=1 after the PIN: $(tail -5 "$T/initrd.$tag.err")"
  kill -TERM "$AGENT"; wait "$AGENT" || fail "initramfs agent exit code $?"
  [ "$(wc -l < "$T/prompts")" = 1 ] || fail "$tag: expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
  ok "$tag: initramfs (card-early): one PIN before READY=1"
  mv "$T/tokens" "$T/tokens.away"   # the token is gone for the rest of the boot
  "$CRYPT_AGENT_BIN" --config "$T/agent.root.conf" "${COMMON[@]}" serve --phase root > "$T/root.$tag.out" 2> "$T/root.$tag.err" &
  AGENT=$!; PIDS+=("$AGENT")
  wait_for 10 grep -q 'watching' "$T/root.$tag.err" || fail "root agent did not start"
  ask_volumes 30 "$tag" "cryptsetup:${V[0]}" "cryptsetup:${V[1]}" "cryptsetup:${V[2]}"
  for i in 0 1 2; do
    wait "${ASKERS[$i]}" || fail "$tag: no answer for ${V[$i]}: $(tail -5 "$T/root.$tag.err")"
    printf '%s' "$(cat "$T/$tag.$i")" > "$T/$tag.$i.key"
    opens_with "${V[$i]}" "$T/$tag.$i.key" || fail "$tag: the served key does not open ${V[$i]}"
  done
  kill -TERM "$AGENT"; wait "$AGENT" || fail "root agent exit code $?"
  [ "$(wc -l < "$T/prompts")" = 1 ] || fail "the real root asked for a PIN again"
  "$CRYPT_AGENT_BIN" --config "$T/agent.root.conf" "${COMMON[@]}" finish > "$T/finish.$tag.out" 2> "$T/finish.$tag.err" \
    || fail "finish: $(cat "$T/finish.$tag.err")"
  grep -q "3 of 3 volumes done, 0 failed; card operations: 0" "$T/finish.$tag.err" || fail "finish: $(tail -3 "$T/finish.$tag.err")"
  mv "$T/tokens.away" "$T/tokens"
  for i in 0 1 2; do
    opens_with "${V[$i]}" "$T/$tag.$i.key" && fail "the key served this boot still opens ${V[$i]} after finish"
    opens_with "${V[$i]}" "$T/person" || fail "the person's passphrase no longer opens ${V[$i]}"
  done
}
one_boot boot
serve_answers gen3
for i in 0 1 2; do opens_with "${V[$i]}" "$T/gen3.$i" || fail "after finish the token's answer does not open ${V[$i]}"; done
ok "one boot: real root answered from the boot cache with the token gone; finish rotated with no token; next answers open"
# The next boot: the root's seed is now the one finish rotated to from the last boot's
# responses; the real root answers the LUKS2 and LUKS1 data volumes from this boot's cache.
one_boot boot2
serve_answers gen4
for i in 0 1 2; do opens_with "${V[$i]}" "$T/gen4.$i" || fail "after the second finish the token's answer does not open ${V[$i]}"; done
ok "second boot: the volumes finish rotated (LUKS2, LUKS2, LUKS1) open from this boot's cache; finish rotated again"

# Hot-plug: the token is absent when the questions come (the module does not
# even initialise); they wait, and the token's return answers them all.
flush_cache
: > "$T/prompts"
mv "$T/tokens" "$T/tokens.away"
"$CRYPT_AGENT_BIN" --config "$T/agent.conf" --keyring session --cache-dir "$T/cache.late" --log-level debug serve \
    > "$T/serve.late.out" 2> "$T/serve.late.err" &
AGENT=$!; PIDS+=("$AGENT")
wait_for 10 grep -q 'watching' "$T/serve.late.err" || fail "agent did not start: $(tail -5 "$T/serve.late.err")"
ask_volumes 60 late "cryptsetup:${V[0]}" "cryptsetup:${V[1]}" "cryptsetup:${V[2]}"
wait_for 20 grep -q 'retrying' "$T/serve.late.err" || fail "no retry while the token is absent: $(tail -5 "$T/serve.late.err")"
for i in 0 1 2; do kill -0 "${ASKERS[$i]}" 2>/dev/null || fail "question $i ended while the token was absent"; done
answer_pins "$PIN"
mv "$T/tokens.away" "$T/tokens"
for i in 0 1 2; do
  wait "${ASKERS[$i]}" || fail "late: no answer for ${V[$i]}: $(tail -5 "$T/serve.late.err")"
  printf '%s' "$(cat "$T/late.$i")" > "$T/late.$i.key"
  cmp -s "$T/late.$i.key" "$T/gen4.$i" || fail "late: the answer for ${V[$i]} is not the current key"
done
kill -TERM "$AGENT"; wait "$AGENT" || fail "late agent exit code $?"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "late: expected 1 PIN prompt, saw $(wc -l < "$T/prompts")"
ok "token absent at first: the questions waited; its return answered all three from one PIN"

# A wrong PIN: refused, the next prompt says so, the right PIN then works.
: > "$T/prompts"
answer_pins 000000 "$PIN"
"$CRYPT_AGENT_BIN" --ask-dir "$ASK" --config "$T/agent.conf" card derive --card-seed-file "$T/seed.hex" --uuid "$uuid" --card-wait 30 \
    > "$T/derive.out" 2> "$T/derive.err" || fail "card derive after a wrong PIN: $(cat "$T/derive.err")"
[ "$(wc -l < "$T/prompts")" = 2 ] || fail "expected 2 PIN prompts (wrong, right), saw $(wc -l < "$T/prompts")"
sed -n 2p "$T/prompts" | grep -q "^Wrong PIN\. " || fail "the prompt after a wrong PIN does not say so: $(sed -n 2p "$T/prompts")"
grep -q "wrong PIN for token \"$TOKEN\"" "$T/derive.err" || fail "no log line for the wrong PIN: $(cat "$T/derive.err")"
[ "$(cat "$T/derive.out")" = "$want" ] || fail "card derive gives another passphrase than serve did"
ok "wrong PIN refused ('$(sed -n 2p "$T/prompts" | cut -c1-60)...'); card derive then matches serve"

# A typed-passphrase serve (no card-* setting) never maps a PKCS#11 module.
printf 'match = cryptsetup:*\n' > "$T/typed.conf"
"$CRYPT_AGENT_BIN" --config "$T/typed.conf" --keyring session --cache-dir "$T/cache.typed" serve \
    > "$T/typed.out" 2> "$T/typed.err" &
TYPED=$!; PIDS+=("$TYPED")
wait_for 10 grep -q 'watching' "$T/typed.err" || fail "typed-passphrase agent did not start: $(cat "$T/typed.err")"
if grep -E "p11-kit-proxy|softhsm|opensc-pkcs11|libp11-kit" "/proc/$TYPED/maps" > "$T/typed.maps"; then
  fail "a typed-passphrase serve maps a PKCS#11 module: $(cat "$T/typed.maps")"
fi
kill -TERM "$TYPED"; wait "$TYPED" 2>/dev/null || true
ok "a typed-passphrase serve maps no PKCS#11 module (a card serve maps $MAPPED)"

no_secrets_in_logs "$PIN" "$SO_PIN" "$PERSON" "$want" "$(xxd -p "$T/resp.bin" | tr -d '\n')" \
  "$(cat "$T"/gen1.0)" "$(cat "$T"/gen1.1)" "$(cat "$T"/gen1.2)" "$(cat "$T"/gen2.0)" "$(cat "$T"/gen2.1)" "$(cat "$T"/gen2.2)" \
  "$(cat "$T"/boot.0.key)" "$(cat "$T"/boot.1.key)" "$(cat "$T"/boot.2.key)" "$(cat "$T"/gen3.0)" "$(cat "$T"/gen3.1)" "$(cat "$T"/gen3.2)"
