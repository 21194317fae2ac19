# SPDX-License-Identifier: MIT
# Helpers for the tests on libcacard's emulated CAC card (sourced after ../lib.sh's
# requirements are met): an NSS database made now with three RSA-2048 keys, the card in
# the private pcscd's vpcd reader (fixture --cac), and the real OpenSC and p11-kit.
#   . "$(dirname "$0")/lib.sh"; cac_start
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
CAC_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for c in pkcs11-tool opensc-tool certutil openssl p11-kit; do
  command -v "$c" >/dev/null || { echo "SKIP: $c missing (packages opensc, libnss3-tools, openssl, p11-kit)" >&2; exit 77; }
done
OPENSC_MODULE=$(ls /usr/lib/*/opensc-pkcs11.so 2>/dev/null | head -1)
P11_PROXY=$(ls /usr/lib/*/p11-kit-proxy.so 2>/dev/null | head -1)
[ -n "$OPENSC_MODULE" ] || { echo "SKIP: opensc-pkcs11.so missing (package opensc-pkcs11)" >&2; exit 77; }
[ -n "$P11_PROXY" ] || { echo "SKIP: p11-kit-proxy.so missing (package p11-kit-modules)" >&2; exit 77; }

# The proxy loads every registered module, SoftHSM2's too, which would read the machine's
# tokens; and OpenSC caches card files under $HOME.  Both stay in the test's directory.
export HOME="$T/home" SOFTHSM2_CONF="$T/softhsm2.conf"
mkdir -p "$HOME" "$T/softhsm"
echo "directories.tokendir = $T/softhsm" > "$SOFTHSM2_CONF"

# The token: label = CN of cert1 (OpenSC's CAC driver), object ids 0001..0003 (2 bytes),
# serial hard-coded in libcacard.
CAC_LABEL="Test CAC cert1"
CAC_IDS=(0001 0002 0003)

# cac_start: the NSS database (PIN = $PIN, given on stdin) and the card in a private pcscd.
cac_start() {
  printf '%s\n' "$PIN" | bash "$CAC_HERE/make-db.sh" "$T/db" > "$T/make-db.log" 2>&1 \
      || fail "make-db.sh: $(cat "$T/make-db.log")"
  fixture start --cac "$T/db"
}

# p11 MODULE ARGS...: pkcs11-tool; --pin env:CAC_PIN_VALUE reads the PIN from an environment
# variable set for that one process only, so it is never in any argv.
p11() { local m=$1; shift; pkcs11-tool --module "$m" "$@"; }
p11_pin() { local m=$1 pin=$2; shift 2; CAC_PIN_VALUE=$pin pkcs11-tool --module "$m" --login --pin env:CAC_PIN_VALUE "$@"; }
