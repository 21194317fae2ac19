#!/bin/bash
# SPDX-License-Identifier: MIT
# make-db.sh OUTDIR : a new NSS database (sql:OUTDIR) for libcacard's emulated CAC card, made at
# test time (keys are never committed): three self-signed RSA-2048 keys with certificates,
# nicknames cert1 cert2 cert3 (the card's objects 0001, 0002, 0003).
# The database password is the card's PIN: it is read from stdin (one line, 4..8 digits, as
# OpenSC's CAC driver wants), never from argv or the environment.  An empty line makes a database
# without a password, on which the emulated card accepts any PIN.
# Writes OUTDIR/certN.pem and OUTDIR/certN.pub.pem (for openssl pkeyutl -verifyrecover).
# Needs certutil (libnss3-tools) and openssl; exit 77 when absent.
set -euo pipefail
D=${1:?usage: make-db.sh OUTDIR < pin}
for c in certutil openssl; do
  command -v "$c" >/dev/null || { echo "SKIP: $c missing (packages libnss3-tools, openssl)" >&2; exit 77; }
done
IFS= read -r PIN || true
[[ -z $PIN || $PIN =~ ^[0-9]{4,8}$ ]] || { echo "make-db.sh: a CAC PIN has 4..8 digits" >&2; exit 2; }
mkdir -p "$D"; D=$(cd "$D" && pwd)
[ ! -e "$D/cert9.db" ] || { echo "make-db.sh: $D already holds an NSS database" >&2; exit 1; }
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
( umask 077; printf '%s\n' "$PIN" > "$W/pw" )
if [ -n "$PIN" ]; then certutil -N -d "sql:$D" -f "$W/pw"; else certutil -N -d "sql:$D" --empty-password; fi
for i in 1 2 3; do
  head -c 2048 /dev/urandom > "$W/noise"
  # -x self-signed; trust flags make the certificates usable as the card's identity
  certutil -S -d "sql:$D" -f "$W/pw" -z "$W/noise" -x -k rsa -g 2048 -Z SHA256 -n "cert$i" \
      -s "CN=Test CAC cert$i,O=crypt-agent tests" -t "CTu,Cu,Cu" -m "$((1000 + i))" -v 120 \
      > "$W/log" 2>&1 || { cat "$W/log" >&2; exit 1; }
  certutil -L -d "sql:$D" -n "cert$i" -a > "$D/cert$i.pem"
  openssl x509 -in "$D/cert$i.pem" -pubkey -noout > "$D/cert$i.pub.pem"
done
