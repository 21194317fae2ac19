#!/bin/bash
# SPDX-License-Identifier: MIT
# The smartcard scenario's images, from prepare.sh's: copies of the three
# disks with one more keyslot each, holding the passphrase the card derives
# for that volume, and an initramfs configured for the card.
#
# The card setup is the agent's interim one (card-seed-file + card-volume
# lines: one seed for every volume), so no enrolment runs here. The keys are
# computed on the host independently of the project's code: the card's
# INTERNAL AUTHENTICATE is AES-128-CBC with IV 0 under the card key
# (vicc-boot.py --secret), and each volume's passphrase is
# HKDF-SHA256(response, salt = seed, info = "luks-sc-agent-v1" || uuid),
# lower-case hex (smartcard/derive.hpp).
source "$(dirname "$0")/lib.sh"
require_boot_tools
require_agent_binary
why=$(card_tools_present) || skip "$why"
for t in xxd:xxd openssl:openssl; do command -v "${t%%:*}" >/dev/null || skip "missing: ${t%%:*} (${t#*:})"; done
cd "$BOOT_WORK"
for f in root.img data1.img data2.img; do [ -s "$f" ] || die "run prepare.sh first ($f is missing)"; done

CARD_KEY=000102030405060708090a0b0c0d0e0f
# The card's PIN, what the person types (8 digits: unlikely to occur by chance
# in a console log, which the test greps for it).
(umask 077; printf 31415926 > secrets/card-pin)
[ -s secrets/card-seed ] || (umask 077; head -c 32 /dev/urandom | xxd -p -c 64 | tr -d '\n' > secrets/card-seed)
response=$(xxd -r -p secrets/card-seed | openssl enc -aes-128-cbc -nopad -K "$CARD_KEY" -iv 00000000000000000000000000000000 | xxd -p -c 64)

# derive UUID: that volume's passphrase on stdout. The response and the seed
# reach python on stdin, never on a command line.
derive() {
    printf '%s\n%s\n%s\n' "$response" "$(cat secrets/card-seed)" "$1" | python3 -c '
import hashlib, hmac, sys
resp, seed, uuid = (l.strip() for l in sys.stdin)
prk = hmac.new(bytes.fromhex(seed), bytes.fromhex(resp), hashlib.sha256).digest()
print(hmac.new(prk, b"luks-sc-agent-v1" + uuid.lower().encode() + b"\x01", hashlib.sha256).hexdigest(), end="")'
}

conf=$BOOT_WORK/card.conf
extra=$BOOT_WORK/card-stage; rm -rf "$extra"; install -d "$extra/etc/crypt-agent"
install -m 600 secrets/card-seed "$extra/etc/crypt-agent/seed"
{
    echo "[crypt-agent]"
    echo "card-enable = yes"
    echo "card-seed-file = /etc/crypt-agent/seed"
    # Under TCG pcscd, vpcd and the emulator's connection through the hostfwd take a
    # while; the agent holds systemd-cryptsetup back until the card answered or this passed.
    echo "card-early-wait = 120"
} > "$conf"
for v in root data1 data2; do
    own=$([ $v = root ] && echo typed || echo $v)
    cp --sparse=always "$v.img" "$v-card.img"
    uuid=$(cryptsetup luksUUID "$v-card.img")
    (umask 077; derive "$uuid" > "secrets/card-$v")
    cryptsetup luksAddKey -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        --key-file "secrets/$own" "$v-card.img" "secrets/card-$v"
    # systemd-cryptsetup asks with Id cryptsetup:<device>, /dev/disk/by-uuid/... for both
    # rd.luks.uuid= and crypttab's UUID=.
    echo "card-volume = cryptsetup:/dev/disk/by-uuid/$uuid $uuid" >> "$conf"
done
log "card disks: $(ls root-card.img data1-card.img data2-card.img | tr '\n' ' ')"
CARD=1 CARD_CONF=$conf CARD_STAGE_EXTRA=$extra OUT=$BOOT_WORK/initrd-card-luks.img "$BOOT_SRC/build-initrd.sh"
