# SPDX-License-Identifier: MIT
# Shared helpers of the LUKS tests (sourced).  Image files only: no
# device-mapper, no loop devices; keys are checked with libcryptsetup's
# crypt_activate_by_passphrase(NULL name) and `cryptsetup open --test-passphrase`.
set -u
ulimit -c 0  # the crash tests abort() on purpose: no core files

TOOL=${1:?usage: $0 LUKS_TOOL}
PASSPHRASE='person: correct horse battery staple'

need() {
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || { echo "SKIP: $c is not installed"; exit 77; }
    done
    [ "$(id -u)" = 0 ] || { echo "SKIP: needs root (LUKS header writes, chattr)"; exit 77; }
}

# Crash tests run on tmpfs when they can: they test process death, not power
# loss, and fsync on a shared disk would make them slow.  LUKS_TEST_TMP overrides.
WORK=$(mktemp -d "${LUKS_TEST_TMP:-/tmp}/crypt-agent-luks.XXXXXX")
cleanup() { chattr -R -i "$WORK" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
printf '%s' "$PASSPHRASE" > "$WORK/pass"
STORE="$WORK/store"
LOCKS="$WORK/locks"
S_OPTS=(--card-luks1-dir "$STORE" --cache-dir "$LOCKS")

fail() { echo "FAIL: $*"; exit 1; }

# make_volume PATH luks1|luks2 [extra luksFormat args...]
make_volume() {
    local path=$1 type=$2; shift 2
    if [ "$type" = luks2 ]; then truncate -s 18M "$path"; else truncate -s 4M "$path"; fi
    cryptsetup luksFormat -q --type "$type" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        --key-file "$WORK/pass" "$@" "$path" || fail "luksFormat $path"
}

# Opens with the given key file (exactly its bytes)?  Uses the cryptsetup CLI,
# independent of the code under test.
opens_with() { cryptsetup open --test-passphrase --key-file "$2" "$1" >/dev/null 2>&1; }

enroll() { "$TOOL" enroll --passphrase-stdin "${S_OPTS[@]}" "$@" < "$WORK/pass"; }
rotate() { "$TOOL" rotate "${S_OPTS[@]}" "$@"; }
check() { "$TOOL" check --card-luks1-dir "$STORE" --passphrase-file "$WORK/pass" "$@"; }
current_key() { "$TOOL" key --card-luks1-dir "$STORE" "$1" > "$2"; }

# Secrets must never reach a log: the person's passphrase and every key file given.
assert_no_secrets_in() {
    local log=$1; shift
    grep -qF -- "$PASSPHRASE" "$log" && fail "the passphrase appears in $log"
    local k
    for k in "$@"; do
        [ -s "$k" ] || continue
        grep -qF -- "$(cat "$k")" "$log" && fail "a key ($k) appears in $log"
    done
    return 0
}
