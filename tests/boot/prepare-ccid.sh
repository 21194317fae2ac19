#!/bin/bash
# SPDX-License-Identifier: MIT
# The CCID scenarios' images, from prepare.sh's stage: libcacard's CAC card
# as QEMU itself emulates it (usb-ccid + ccid-card-emulated, backend
# certificates) needs an NSS database with three RSA-2048 keys, made here by
# tests/smartcard/cac/make-db.sh (PIN secrets/ccid-pin, never committed), and
# an initramfs whose configuration names a PKCS#11 key (card-uri), so the
# dracut module installs pcscd, libccid, p11-kit's proxy with the registered
# modules and OpenSC.
# A second image with the same configuration but no card-uri (the APDU
# backend) measures what the PKCS#11 part adds, and shows it adds nothing
# when no PKCS#11 key is configured.
source "$(dirname "$0")/lib.sh"
require_boot_tools
require_agent_binary
why=$(ccid_tools_present) || skip "$why"
cd "$BOOT_WORK"

mkdir -p -m 700 secrets; (umask 077; printf 27182818 > secrets/ccid-pin)
rm -rf ccid-db
bash "$BOOT_SRC/../smartcard/cac/make-db.sh" ccid-db < secrets/ccid-pin > ccid-db.log 2>&1 \
    || { cat ccid-db.log >&2; die "make-db.sh failed"; }

# cert1's private key for the host's own computation of the card's signatures
# (card_keys.py, CARD_RSA_KEY): exported from the database, kept in secrets/.
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
(umask 077; head -c 16 /dev/urandom | xxd -p > "$W/p12pw"
 pk12util -o "$W/key1.p12" -n cert1 -d sql:ccid-db -k secrets/ccid-pin -w "$W/p12pw" > "$W/pk12util.log" 2>&1 \
     || { cat "$W/pk12util.log" >&2; exit 1; }
 openssl pkcs12 -in "$W/key1.p12" -nocerts -nodes -passin "file:$W/p12pw" 2>/dev/null \
     | openssl pkey -out secrets/ccid-key1.pem) || die "cannot export cert1's key from ccid-db"

# The token's label is the CN of cert1 (OpenSC's CAC driver); its key ids are 2 bytes.
# QEMU's reader claims a PIN pad it does not have: the PIN is asked on the console.
conf=$BOOT_WORK/ccid.conf
printf '[crypt-agent]\ncard-enable = yes\ncard-uri = pkcs11:token=Test%%20CAC%%20cert1;id=%%00%%01\ncard-pin-pad = no\n' > "$conf"
printf '[crypt-agent]\ncard-enable = yes\n' > ccid-apdu.conf
CARD=1 CCID=1 CARD_CONF=$conf OUT=$BOOT_WORK/initrd-ccid.img "$BOOT_SRC/build-initrd.sh" > ccid-initrd.log
CARD=1 CCID=0 CARD_CONF=$BOOT_WORK/ccid-apdu.conf OUT=$BOOT_WORK/initrd-ccid-apdu.img "$BOOT_SRC/build-initrd.sh" \
    > ccid-apdu-initrd.log
# Files only in the PKCS#11 image, with their sizes (lsinitrd's fifth column).
listing() { lsinitrd "$1" 2>/dev/null | awk '$1 ~ /^-/ {print $NF, $5}' | sort; }
# the CCID image's own test additions (the overlay, pkcs11-tool and the USB
# drivers) are not the module's: leave them out of the count
join -v1 <(listing initrd-ccid.img) <(listing initrd-ccid-apdu.img) \
    | grep -Ev 'test-ccid|pkcs11-tool|/usb/|usb-common|usbcore|uhci' > ccid-added.txt || true
# What only a PKCS#11 key brings: p11-kit's proxy (a link on some releases, so the whole
# listing is searched) and the module files of the registered modules. (libp11-kit itself
# may be in any image: Debian 13's systemd-cryptsetup brings it for its own pkcs11 token
# plugin; OpenSC too: dracut's own pcsc module, which the module uses where the
# distribution's dracut has one, installs opensc-pkcs11 and libopensc.)
pkcs11_files=$(lsinitrd initrd-ccid.img 2>/dev/null)
apdu_files=$(lsinitrd initrd-ccid-apdu.img 2>/dev/null)
for f in p11-kit-proxy.so usr/share/p11-kit/modules/opensc-pkcs11.module; do
    grep -q "$f" <<< "$pkcs11_files" || die "the PKCS#11 image lacks $f"
    ! grep -q "$f" <<< "$apdu_files" || die "the image without card-uri has $f"
done
log "the PKCS#11 part adds $(wc -l < ccid-added.txt) files, $(awk '{s += $2} END {print s}' ccid-added.txt) bytes uncompressed;" \
    "images $(stat -c %s initrd-ccid-apdu.img) -> $(stat -c %s initrd-ccid.img) bytes (zstd)"
sed 's/^/  /' ccid-added.txt >&2

# card-rotate's images for the CCID reader (the disks enrolled with the CAC key).
if [ -s root.img ] && [ -s data1.img ] && [ -s data2.img ]; then
    CARD_KIND=ccid "$BOOT_SRC/prepare-rotate.sh" || [ $? = 77 ]
else
    log "no root.img/data1.img/data2.img: no images for ccid-one-pin-rotate"
fi
