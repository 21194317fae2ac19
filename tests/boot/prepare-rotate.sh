#!/bin/bash
# SPDX-License-Identifier: MIT
# The card-rotate scenario's images, from prepare.sh's: copies of the three
# disks enrolled for the card by the build's own `crypt-agent enroll` (one run,
# one seed for all three), a root file system that holds data2's LUKS1 seed
# record, and an initramfs configured for enrolled volumes:
#   root-rot.img   LUKS2, the root file system (rootfs/ plus the agent's
#                  configuration, <data2 uuid>.rec in the binary's default
#                  LUKS1 store (/boot/crypt-agent unless CMake says else), an
#                  fstab that mounts / read-write so finish can rewrite that
#                  record, the root in /etc/crypttab, test-rotate-store.service)
#   data1-rot.img  LUKS2 (crypt-agent token), data2-rot.img LUKS1 (store file)
#   initrd-card-rot.img, rot-store/ (the store as enrolled, for the host's checks)
#   secrets/rot-enrolled-{root,data1,data2}: each volume's key as enrolled,
#                  computed on the host (card_keys.py), checked to open it;
#                  secrets/rot-enrolled-response: the card's response to that seed
#
# The card is the boot tests' emulator (vicc-boot.py, same key, PIN
# secrets/card-pin) on a private pcscd (tests/smartcard/fixture); enrolment
# runs in a private mount namespace with a tmpfs on /run/systemd and a session
# keyring, and its PIN question goes to a private ask directory. Neither the
# machine's /run/systemd/ask-password nor its pcscd is touched.
#
# The store must sit inside the encrypted root, and the host has no
# device-mapper: the root is encrypted once (volume key VK) and enrolled, its
# header kept; then its file system is rebuilt with the store, encrypted again
# with the same VK and the same layout, and the enrolled header restored.
#
# CARD_KIND=ccid: the same for the CCID scenarios (ccid-rot names): the card is
# libcacard's CAC card on prepare-ccid.sh's NSS database, in the private pcscd
# through the cacard-vpcd bridge (QEMU's usb-ccid serves the same database at
# boot), enrolled by its PKCS#11 key (card-uri, through p11-kit's proxy), PIN
# secrets/ccid-pin; the host computes the keys with the exported RSA key
# (card_keys.py, CARD_RSA_KEY).
source "$(dirname "$0")/lib.sh"
require_boot_tools
require_agent_binary
KIND=${CARD_KIND:-vicc}
if [ "$KIND" = ccid ]; then
    why=$(ccid_tools_present) || skip "$why"
    : "${CACARD_VPCD:=$CRYPT_AGENT_BUILD_DIR/tests/smartcard/cacard-vpcd}"
    [ -x "$CACARD_VPCD" ] || skip "the cacard-vpcd bridge $CACARD_VPCD is not built (libcacard-dev)"
    export CACARD_VPCD
    R=ccid-rot
    CCID_URI='pkcs11:token=Test%20CAC%20cert1;id=%00%01'
else
    why=$(card_tools_present) || skip "$why"
    R=rot
fi
: "${PCSC_WAIT:=$CRYPT_AGENT_BUILD_DIR/tests/smartcard/pcsc-wait}"
[ -x "$PCSC_WAIT" ] || skip "the pcsc-wait helper $PCSC_WAIT is not built"
for t in unshare keyctl base64 openssl; do command -v $t >/dev/null || skip "missing: $t"; done

if [ "${ROT_ISOLATED:-}" != 1 ]; then
    exec env ROT_ISOLATED=1 PCSC_WAIT="$PCSC_WAIT" CARD_KIND="$KIND" unshare -m --propagation private \
        sh -c 'mount -t tmpfs -o mode=0755 tmpfs /run/systemd && mkdir -p /run/systemd/ask-password &&
               exec keyctl session - "$@"' sh bash "$0" "$@"
fi
cd "$BOOT_WORK"
for f in root.img data1.img data2.img secrets/typed; do [ -s "$f" ] || die "run prepare.sh first ($f is missing)"; done
if [ "$KIND" = ccid ]; then
    [ -s secrets/ccid-pin ] && [ -s secrets/ccid-key1.pem ] && [ -e ccid-db/cert9.db ] || die "run prepare-ccid.sh first"
    PIN_FILE=secrets/ccid-pin
    export CARD_RSA_KEY=$BOOT_WORK/secrets/ccid-key1.pem
else
    [ -s secrets/card-pin ] || skip "no secrets/card-pin: prepare-card.sh did not run (or skipped)"
    PIN_FILE=secrets/card-pin
fi
[ -d rootfs/etc ] || die "run make-rootfs.sh first (rootfs/ is missing)"
CARD_TOOL=$CRYPT_AGENT_BIN
# A private pcscd + card, answer_pins, $T (removed on success), cleanup by PID.
source "$CRYPT_AGENT_SOURCE_DIR/tests/smartcard/lib.sh"
PIN=$(cat "$PIN_FILE")
FAST=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)
CONF=$BOOT_WORK/card-$R.conf
T0=$SECONDS
: > "$T/empty.conf"
STORE_DIR=$("$CRYPT_AGENT_BIN" config --config "$T/empty.conf" | sed -n 's/^card-luks1-dir = //p')
[ -n "$STORE_DIR" ] || fail "crypt-agent config printed no card-luks1-dir"

{
    echo "[crypt-agent]"
    echo "card-enable = yes"
    # No card-luks1-dir: the default store, which the shipped finish unit must be able to
    # write (issue 13 item 9: a store the unit cannot write went unnoticed while this
    # test configured /var/lib/crypt-agent).
    # Under TCG pcscd, vpcd and the emulator's connection through the hostfwd take a while.
    echo "card-early-wait = 120"
    if [ "$KIND" = ccid ]; then
        # the CAC's key 0001 (2-byte ids); QEMU's reader claims a PIN pad it does not have
        echo "card-uri = $CCID_URI"
        echo "card-pin-pad = no"
    fi
} > "$CONF"

# encrypt_root IMAGE: the LUKS2 layout of make-rootfs.sh, with the volume key $T/vk.
encrypt_root() {
    cryptsetup reencrypt -q --encrypt --type luks2 --reduce-device-size 32M "${FAST[@]}" \
        --volume-key-file "$T/vk" --key-file secrets/typed "$1"
}
# The data segments of a LUKS2 header (offset, cipher, sector size), as one line.
segments() {
    cryptsetup luksDump --dump-json-metadata "$1" |
        python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["segments"], sort_keys=True))'
}

# 1. The disks as they will be enrolled. The root's content comes later (step 3).
(umask 077; head -c 64 /dev/urandom > "$T/vk")
rm -f root-$R.img; truncate -s 560M root-$R.img
encrypt_root root-$R.img
for v in data1 data2; do cp --sparse=always "$v.img" "$v-$R.img"; done
ROOT_UUID=$(cryptsetup luksUUID root-$R.img)
DATA2_UUID=$(cryptsetup luksUUID data2-$R.img)

# 2. Enrolment: one PIN question, one card session, one seed for all three.
CARD_ARGS=(--card-luks1-dir "$T/store")
if [ "$KIND" = ccid ]; then
    # p11-kit's proxy also loads SoftHSM2's module where registered: not the machine's tokens
    export HOME="$T/home" SOFTHSM2_CONF="$T/softhsm2.conf"
    mkdir -p "$HOME" "$T/softhsm"; echo "directories.tokendir = $T/softhsm" > "$SOFTHSM2_CONF"
    fixture start --cac "$BOOT_WORK/ccid-db"
    CARD_ARGS=(--card-luks1-dir "$T/store" --card-uri "$CCID_URI")
else
    fixture start --no-card
    /usr/bin/python3 "$BOOT_SRC/vicc-boot.py" -H 127.0.0.1 -P "$FIXTURE_PORT" --retry 30 \
        --secret 000102030405060708090a0b0c0d0e0f --pin "$PIN" --strict > "$T/fx/vicc-boot.log" 2>&1 &
    PIDS+=("$!")
    PCSCLITE_CSOCK_NAME=$PCSCLITE_CSOCK_NAME "$PCSC_WAIT" present "$FIXTURE_READER" 30000 \
        || fail "the card emulator did not reach the private pcscd"
fi
answer_pins "$PIN"
# The person's passphrase ("typed" opens all three) on stdin, one line for all.
{ cat secrets/typed; echo; } | "$CRYPT_AGENT_BIN" --ask-dir "$ASK" enroll --passphrase-stdin \
    "${CARD_ARGS[@]}" --cache-dir "$T/locks" --card-wait 30 root-$R.img data1-$R.img data2-$R.img \
    > "$T/enroll.out" 2> "$T/enroll.err" || fail "enroll: $(cat "$T/enroll.err")"
grep -q "3 of 3 volumes done, 0 failed" "$T/enroll.err" \
    || fail "enroll summary: $(tail -3 "$T/enroll.err")"
[ "$(wc -l < "$T/prompts")" = 1 ] || fail "enrolment asked for the PIN $(wc -l < "$T/prompts") times, want 1"
[ -s "$T/store/$DATA2_UUID.rec" ] || fail "enroll wrote no LUKS1 record for data2 ($(ls "$T/store"))"
log "enrolled: $(sed 's/^<[0-9]>//' "$T/enroll.err" | tr '\n' ' ')"

# The keys as enrolled, computed on the host from the records; each must open its volume.
rm -rf $R-store; install -d -m 700 $R-store; install -m 600 "$T/store/$DATA2_UUID.rec" $R-store/
for v in root data1 data2; do
    store=(); [ $v = data2 ] && store=($R-store/"$DATA2_UUID.rec")
    (umask 077; python3 "$BOOT_SRC/card_keys.py" key "$v-$R.img" "${store[@]}" > "secrets/$R-enrolled-$v")
    cryptsetup open --test-passphrase --key-file "secrets/$R-enrolled-$v" "$v-$R.img" \
        || fail "the key computed on the host for $v does not open it"
    cryptsetup open --test-passphrase --key-file secrets/typed "$v-$R.img" \
        || fail "the person's passphrase no longer opens $v"
    log "$v-rot.img: $(python3 "$BOOT_SRC/card_keys.py" record "$v-$R.img" "${store[@]}"), the host's key opens it"
done
# The card's response to the enrolled seed (one seed for all three): what the boot cache holds.
(umask 077; python3 "$BOOT_SRC/card_keys.py" response root-$R.img > secrets/$R-enrolled-response)
no_secrets_in_logs "$PIN" "$(cat secrets/typed)" "$(cat secrets/$R-enrolled-root)" \
    "$(cat secrets/$R-enrolled-data1)" "$(cat secrets/$R-enrolled-data2)" "$(cat secrets/$R-enrolled-response)"

# 3. The root file system with the store, under the enrolled header.
tree=$BOOT_WORK/rot-rootfs
rm -rf "$tree"; cp -al rootfs "$tree"   # hard links: every change below replaces a file, never edits one
rm -f "$tree/etc/crypt-agent.conf" "$tree/etc/fstab" "$tree/etc/crypttab"
install -m 644 "$CONF" "$tree/etc/crypt-agent.conf"
echo "/dev/mapper/luks-$ROOT_UUID / ext4 rw 0 0" > "$tree/etc/fstab"
# As on an installed system, crypttab lists the root too (dracut's rd.luks.uuid comes from
# it): finish rotates the enrolled volumes listed there (card-crypttab).
{ echo "luks-$ROOT_UUID UUID=$ROOT_UUID none luks"; cat rootfs/etc/crypttab; } > "$tree/etc/crypttab"
install -d -m 700 "$tree$STORE_DIR"
install -m 600 "$T/store/$DATA2_UUID.rec" "$tree$STORE_DIR/"
rm -rf "$tree/etc/test-boot/secrets"; install -d -m 700 "$tree/etc/test-boot/secrets"
install -m 600 secrets/* "$tree/etc/test-boot/secrets/"
tar -C "$BOOT_SRC/rootfs-overlay-rotate" -c . | tar -C "$tree" -x --keep-directory-symlink
systemctl --root="$tree" enable test-rotate-store.service 2>/dev/null

cryptsetup luksHeaderBackup -q --header-backup-file "$T/root.hdr" root-$R.img
enrolled_segments=$(segments root-$R.img)
rm -f root-$R.img; truncate -s 560M root-$R.img
mkfs.ext4 -q -F -L bootroot -d "$tree" root-$R.img 512M
encrypt_root root-$R.img
[ "$(segments root-$R.img)" = "$enrolled_segments" ] \
    || fail "the second encryption's data segment differs: $(segments root-$R.img) vs $enrolled_segments"
cryptsetup luksHeaderRestore -q --header-backup-file "$T/root.hdr" root-$R.img
rm -rf "$tree"
[ "$(cryptsetup luksUUID root-$R.img)" = "$ROOT_UUID" ] || fail "root-$R.img lost its UUID"
cryptsetup luksDump --dump-volume-key -q --key-file secrets/typed --volume-key-file "$T/vk.check" root-$R.img > /dev/null
cmp -s "$T/vk" "$T/vk.check" || fail "the restored header does not hold the volume key the data is encrypted with"
cryptsetup open --test-passphrase --key-file secrets/$R-enrolled-root root-$R.img || fail "root-$R.img: enrolled key lost"

log "card-rot disks: $(ls -s root-$R.img data1-$R.img data2-$R.img | tr '\n' ' ')"
if [ "$KIND" = ccid ]; then
    CARD=1 CCID=1 CARD_CONF=$CONF OUT=$BOOT_WORK/initrd-ccid-rot.img "$BOOT_SRC/build-initrd.sh"
else
    CARD=1 CARD_CONF=$CONF OUT=$BOOT_WORK/initrd-card-rot.img "$BOOT_SRC/build-initrd.sh"
fi
log "prepare-rotate: $((SECONDS - T0)) s"
