# SPDX-License-Identifier: MIT
# Sourced by the LUKS tests with the real virtual card, after tests/smartcard/lib.sh:
# three image files in $T formatted with the person's passphrase ($T/person),
# V=(LUKS2 LUKS2 LUKS1), and opens_with VOLUME KEYFILE.
PERSON='person: correct horse battery staple'
printf '%s' "$PERSON" > "$T/person"
V=("$T/a.luks2" "$T/b.luks2" "$T/c.luks1")
for v in "${V[@]}"; do
  case $v in *luks2) truncate -s 18M "$v"; type=luks2;; *) truncate -s 4M "$v"; type=luks1;; esac
  cryptsetup luksFormat -q --type $type --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$T/person" "$v" \
    || fail "luksFormat $v"
done
opens_with() { cryptsetup open --test-passphrase --key-file "$2" "$1" >/dev/null 2>&1; }
