#!/bin/bash
# SPDX-License-Identifier: MIT
# Libraries loaded on first use (smartcard/dl.hpp): serve with a typed passphrase maps none of
# libcryptsetup, libcrypto, libpcsclite; a command that needs one that is missing fails with
# the library's name and what needed it, and works again once it is there.
# A test cannot hide a system library from the loader, so the test build's
# CRYPT_AGENT_FAULT_NO_LIBRARY=SONAME makes one count as missing (exit 77 without it).
. "$(dirname "$0")/lib.sh"
need cryptsetup keyctl unshare
BIN=${CRYPT_AGENT_BIN:?CRYPT_AGENT_BIN names the crypt-agent binary}

V="$WORK/v.luks2"
make_volume "$V" luks2
LOG="$WORK/log"

CRYPT_AGENT_FAULT_NO_LIBRARY=libcryptsetup.so.12 enroll "$V" > "$LOG" 2>&1 && fail "enrolled without libcryptsetup"
grep -q "hidden by fault injection" "$LOG" ||
    { grep -q "cannot load" "$LOG" || { echo "SKIP: built without CRYPT_AGENT_FAULT_INJECTION"; exit 77; }; }
grep -q "v.luks2: failed: cannot load libcryptsetup.so.12, needed for reading a LUKS header" "$LOG" ||
    fail "no clear message without libcryptsetup: $(cat "$LOG")"

CRYPT_AGENT_FAULT_NO_LIBRARY=libcrypto.so.3 enroll "$V" > "$LOG" 2>&1 && fail "enrolled without libcrypto"
grep -q "cannot load libcrypto.so.3, needed for deriving a volume's key from the card" "$LOG" ||
    fail "no clear message without libcrypto: $(cat "$LOG")"

CRYPT_AGENT_FAULT_NO_LIBRARY=libpcsclite.so.1 "$BIN" card status > "$LOG" 2>&1 && fail "card status without libpcsclite"
grep -q "cannot load libpcsclite.so.1, needed for listing smartcard readers" "$LOG" ||
    fail "no clear message without libpcsclite: $(cat "$LOG")"

# The control: with every library there, the same enrolment works.
enroll "$V" > "$LOG" 2>&1 || fail "enrolment with the libraries: $(cat "$LOG")"

# serve with a typed passphrase: none of them mapped.  Its own mount namespace and session
# keyring, its ask directory and cache in the scratch directory.
mkdir -p "$WORK/ask" "$WORK/cache"
unshare -m keyctl session - "$BIN" serve --keyring session --ask-dir "$WORK/ask" --cache-dir "$WORK/cache" \
    --log-level warning 2> "$WORK/serve.log" &
pid=$!
# unshare and keyctl exec: the PID becomes serve's; its inotify watch is up once started.
for _ in $(seq 200); do
    ls -l "/proc/$pid/fd" 2>/dev/null | grep -q "anon_inode:inotify" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
maps=$(cat "/proc/$pid/maps" 2>/dev/null)
kill "$pid"; wait "$pid" 2>/dev/null
[ -n "$maps" ] || fail "serve did not run: $(cat "$WORK/serve.log")"
for lib in libcryptsetup libcrypto libpcsclite libboost_log libdevmapper; do
    ! grep -q "/$lib\." <<< "$maps" || fail "serve with a typed passphrase maps $lib"
done
echo "PASS"
