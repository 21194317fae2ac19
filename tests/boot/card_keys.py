#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The card keys of enrolled volumes, computed on the host independently of
the project's code (for prepare-rotate.sh and the card-rotate scenario).

A volume's seed record names the seeds (card challenges) of its agent
keyslots: a LUKS2 token of type "crypt-agent" in its header, or for LUKS1 a
store file "<json with uuid>\\ncrc32 <hex>\\n" (proto/seed_token.hpp). The
boot tests' card answers a seed with AES-128-CBC under its key, IV 0
(vicc-boot.py --secret); the volume's key is
HKDF-SHA256(response, salt = seed, info = "luks-sc-agent-v1" || uuid),
lower-case hex (smartcard/derive.hpp): AES by openssl, HKDF by hmac here.
Seeds are not secret; keys are: they reach only stdout, when asked for.

    card_keys.py key IMAGE [STORE-FILE]   the current generation's key on stdout
    card_keys.py response IMAGE [STORE-FILE]
                                          the card's response to that seed, hex
    card_keys.py record IMAGE [STORE-FILE]
                                          generation numbers, one line (no key)
"""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import zlib

# The test card's INTERNAL AUTHENTICATE key (vicc-boot.py --secret).
CARD_KEY = "000102030405060708090a0b0c0d0e0f"
SLOTS = ("current", "pending", "previous")


def card_response(seed):
    """AES-128-CBC, IV 0, no padding (the seed is whole blocks), by openssl; the seed on stdin.
    With CARD_RSA_KEY (a PEM private key: the CCID scenarios' CAC key, exported from its NSS
    database) the card is a PKCS#11 RSA key: CKM_RSA_PKCS = PKCS#1 v1.5 type 1 padding of
    the raw seed, which openssl pkeyutl -sign makes with rsa_padding_mode:pkcs1."""
    rsa_key = os.environ.get("CARD_RSA_KEY")
    if rsa_key:
        return subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", rsa_key, "-pkeyopt", "rsa_padding_mode:pkcs1"],
                              input=seed, capture_output=True, check=True).stdout
    return subprocess.run(["openssl", "enc", "-aes-128-cbc", "-nopad", "-K", CARD_KEY, "-iv", "0" * 32],
                          input=seed, capture_output=True, check=True).stdout


def volume_key(seed, uuid):
    """Lower-case hex, as bytes (what the agent answers and LUKS stores)."""
    prk = hmac.new(seed, card_response(seed), hashlib.sha256).digest()
    okm = hmac.new(prk, b"luks-sc-agent-v1" + uuid.lower().encode() + b"\x01", hashlib.sha256).digest()
    return okm.hex().encode()


def luks_uuid(image):
    return subprocess.check_output(["cryptsetup", "luksUUID", image], text=True).strip()


def token_record(image):
    """The crypt-agent token of a LUKS2 image (a dict), or None."""
    meta = json.loads(subprocess.check_output(["cryptsetup", "luksDump", "--dump-json-metadata", image], text=True))
    found = [t for t in meta.get("tokens", {}).values() if t.get("type") == "crypt-agent"]
    return found[0] if found else None


def store_record(text, uuid):
    """The record of a LUKS1 store file's text, checked against its CRC line and UUID."""
    body, _, tail = text.partition("\n")
    crc = tail.strip().removeprefix("crc32 ")
    line_crc = zlib.crc32((body + "\n").encode())  # the CRC covers the JSON line with its newline
    if f"{line_crc:08x}" != crc.lower():
        raise ValueError("store record: CRC mismatch")
    rec = json.loads(body)
    if rec.get("uuid", "").lower() != uuid.lower():
        raise ValueError(f"store record names {rec.get('uuid')}, not {uuid}")
    return rec


def generations(record):
    """{generation number: seed bytes} of every generation a record names."""
    return {g["generation"]: bytes.fromhex(g["seed"]) for g in (record.get(s) for s in SLOTS) if g}


def current(record):
    g = record.get("current")
    return (g["generation"], bytes.fromhex(g["seed"])) if g else (None, None)


def record_of(image, store_file=None):
    if store_file:
        with open(store_file) as f:
            return store_record(f.read(), luks_uuid(image))
    return token_record(image)


def main(argv):
    if len(argv) not in (3, 4) or argv[1] not in ("key", "response", "record"):
        sys.exit(__doc__)
    image = argv[2]
    rec = record_of(image, argv[3] if len(argv) == 4 else None)
    if rec is None:
        sys.exit(f"{image}: no crypt-agent record")
    if argv[1] == "record":
        print(" ".join(f"{s}={rec[s]['generation']}" for s in SLOTS if rec.get(s)))
        return
    gen, seed = current(rec)
    if seed is None:
        sys.exit(f"{image}: the record names no current generation")
    if argv[1] == "response":
        sys.stdout.write(card_response(seed).hex())
    else:
        sys.stdout.buffer.write(volume_key(seed, luks_uuid(image)))


if __name__ == "__main__":
    main(sys.argv)
