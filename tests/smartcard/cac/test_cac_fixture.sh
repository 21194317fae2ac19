#!/bin/bash
# SPDX-License-Identifier: MIT
# The CAC fixture on its own, with software nobody here wrote: libcacard's emulated CAC card
# (keys in an NSS database made now) in a private pcscd, read by OpenSC (cac driver,
# opensc-pkcs11.so) directly and through p11-kit's proxy.  The token and its three RSA-2048 keys
# are listed, RSA-PKCS signatures after a PIN login are deterministic and verify with the public
# key of the certificate the card itself presents, a card pulled and re-inserted signs the same,
# and a wrong PIN is refused.  Every later CAC test builds on these facts.
. "$(dirname "$0")/lib.sh"
cac_start
WRONG=99999999

opensc-tool -l > "$T/readers.txt" 2>&1 || fail "opensc-tool -l: $(cat "$T/readers.txt")"
grep -Eq "^[0-9]+ +Yes +$FIXTURE_READER\$" "$T/readers.txt" || fail "no card in '$FIXTURE_READER': $(cat "$T/readers.txt")"
name=$(opensc-tool -r "$FIXTURE_READER" -n 2>/dev/null) || true
[ "$name" = "Common Access Card (CAC)" ] || fail "OpenSC names the card '$name'"
ok "PC/SC: the card is in '$FIXTURE_READER'; OpenSC's driver: $name"

p11 "$OPENSC_MODULE" -L > "$T/slots.txt" 2>&1 || fail "pkcs11-tool -L: $(cat "$T/slots.txt")"
grep -q "token label *: $CAC_LABEL\$" "$T/slots.txt" || fail "token '$CAC_LABEL' not listed: $(cat "$T/slots.txt")"
ok "opensc-pkcs11: token '$CAC_LABEL'"

p11_pin "$OPENSC_MODULE" "$PIN" --token-label "$CAC_LABEL" -O --type privkey > "$T/keys.txt" 2> "$T/keys.err" \
    || fail "listing private keys after login failed"
for id in "${CAC_IDS[@]}"; do
  grep -A8 'Private Key Object; RSA' "$T/keys.txt" | grep -q "ID: *$id\$" || fail "no RSA private key with id $id: $(cat "$T/keys.txt")"
done
[ "$(grep -c 'Private Key Object; RSA' "$T/keys.txt")" = 3 ] || fail "expected 3 private keys: $(cat "$T/keys.txt")"
ok "after login: three RSA private keys, ids ${CAC_IDS[*]}"

head -c 32 /dev/urandom > "$T/seed.bin"
sign() {   # sign MODULE ID OUT
  p11_pin "$1" "$PIN" --token-label "$CAC_LABEL" --sign -m RSA-PKCS --id "$2" -i "$T/seed.bin" -o "$3" \
      >> "$T/sign.log" 2>&1 || fail "RSA-PKCS signature with key $2 through $1 failed"
}
for id in "${CAC_IDS[@]}"; do
  sign "$OPENSC_MODULE" "$id" "$T/sig$id.bin"
  [ "$(stat -c %s "$T/sig$id.bin")" = 256 ] || fail "signature of key $id is not 256 bytes"
  # the public key of the certificate the card presents under the same id
  p11 "$OPENSC_MODULE" --token-label "$CAC_LABEL" --read-object --type cert --id "$id" -o "$T/cert$id.der" \
      > /dev/null 2>> "$T/sign.log" || fail "cannot read certificate $id from the card"
  openssl x509 -inform DER -in "$T/cert$id.der" -pubkey -noout > "$T/pub$id.pem" || fail "certificate $id unreadable"
  openssl pkeyutl -verifyrecover -pubin -inkey "$T/pub$id.pem" -in "$T/sig$id.bin" -out "$T/rec$id.bin" 2>> "$T/sign.log" \
      || fail "signature of key $id does not verify with certificate $id's public key"
  cmp -s "$T/seed.bin" "$T/rec$id.bin" || fail "signature of key $id recovers something else than the seed"
  cmp -s "$T/pub$id.pem" "$T/db/cert${id#000}.pub.pem" || fail "certificate $id on the card is not the database's cert${id#000}"
done
! cmp -s "$T/sig0001.bin" "$T/sig0002.bin" && ! cmp -s "$T/sig0002.bin" "$T/sig0003.bin" || fail "two keys gave one signature"
sign "$OPENSC_MODULE" 0001 "$T/again.bin"
cmp -s "$T/sig0001.bin" "$T/again.bin" || fail "RSA-PKCS is not deterministic on this card"
ok "RSA-PKCS after login: each key's signature verifies (openssl) with the card's certificate; deterministic"

p11-kit list-modules > "$T/modules.txt" 2>&1 || true
# p11-kit 0.24 (Debian 12) heads a module "opensc-pkcs11: opensc-pkcs11.so", 0.25 (Debian 13)
# "module: opensc-pkcs11".
grep -A8 -E '^(module: opensc-pkcs11$|opensc-pkcs11:)' "$T/modules.txt" | grep -q "token: $CAC_LABEL" \
    || fail "p11-kit list-modules does not show the token under opensc-pkcs11: $(cat "$T/modules.txt")"
p11 "$P11_PROXY" -L > "$T/proxy.txt" 2>&1 || fail "pkcs11-tool through p11-kit-proxy: $(cat "$T/proxy.txt")"
grep -q "token label *: $CAC_LABEL\$" "$T/proxy.txt" || fail "the proxy does not list '$CAC_LABEL': $(cat "$T/proxy.txt")"
sign "$P11_PROXY" 0001 "$T/proxy.bin"
cmp -s "$T/sig0001.bin" "$T/proxy.bin" || fail "the signature through p11-kit-proxy differs"
ok "p11-kit: registered module opensc-pkcs11 shows the token; the proxy signs the same"

fixture pull
p11 "$OPENSC_MODULE" -L > "$T/pulled.txt" 2>&1 || true
! grep -q "token label *: $CAC_LABEL" "$T/pulled.txt" || fail "token still listed with the card pulled"
fixture insert
sign "$OPENSC_MODULE" 0001 "$T/reinserted.bin"
cmp -s "$T/sig0001.bin" "$T/reinserted.bin" || fail "the signature after re-insertion differs"
ok "card pulled: no token; re-inserted: the same signature"

rc=0
p11_pin "$OPENSC_MODULE" "$WRONG" --token-label "$CAC_LABEL" -O --type privkey > "$T/wrong.txt" 2>&1 || rc=$?
[ $rc != 0 ] || fail "a wrong PIN logged in"
grep -q 'C_Login failed' "$T/wrong.txt" || fail "a wrong PIN: $(cat "$T/wrong.txt")"
! grep -q 'Private Key Object' "$T/wrong.txt" || fail "private keys listed after a wrong PIN"
sign "$OPENSC_MODULE" 0001 "$T/after-wrong.bin"
cmp -s "$T/sig0001.bin" "$T/after-wrong.bin" || fail "the right PIN after a wrong one signs differently"
ok "a wrong PIN is refused ($(grep -o 'rv = CKR_[A-Z_]*' "$T/wrong.txt" | head -1)); the right one works after it"

for f in "$T"/*.txt "$T"/*.log "$T"/*.err "$T"/fx/*.log; do
  [ -f "$f" ] || continue
  if grep -qF -e "$PIN" -e "$WRONG" "$f"; then fail "a PIN appears in $f"; fi
done
ok "no PIN in any output or log"
