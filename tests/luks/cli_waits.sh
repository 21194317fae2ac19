#!/bin/bash
# SPDX-License-Identifier: MIT
# What enroll says while it waits, and when it need not wait (issue 16), with the real
# binary on image files and no card at all (pcscd's socket points nowhere: the card
# service waits for a pcscd that never comes, as on a machine without a reader):
#   1. A file that is not LUKS fails at once: the card wait never starts (its line never
#      appears), the summary says "card operations: 0".
#   2. A LUKS volume with no card: one line when the card wait starts ("waiting for a card
#      in any reader (up to 2 s)") and one when it ends; "card operations: 0" (none reached
#      a card; it used to say 1); every stderr line has the "crypt-agent enroll: " prefix.
#   3. The existing passphrase asked through ask-password (--ask-dir): its wait has the
#      same two lines, answered here by systemd's own reply sender.
#   4. On a terminal (a pty from script(1)): the card wait is a status line redrawn with
#      "\r" and erased when done; no start/end lines.
#   5. libcryptsetup's own messages (a missing file, a directory, a wrong passphrase, a
#      corrupt header) come through our log with the prefix, never bare on stderr; its
#      debug lines only with --log-level debug.
# Private mount namespace: tmpfs on /run/systemd, so nothing reaches the machine's.
if [ "${LUKS_ISOLATED:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "SKIP: needs root" >&2; exit 77; }
  for c in unshare script; do command -v $c >/dev/null || { echo "SKIP: $c missing"; exit 77; }; done
  [ -x /lib/systemd/systemd-reply-password ] || { echo "SKIP: /lib/systemd/systemd-reply-password missing"; exit 77; }
  exec env LUKS_ISOLATED=1 unshare -m --propagation private \
    sh -c 'mount -t tmpfs -o mode=0755 tmpfs /run/systemd && mkdir -p /run/systemd/ask-password && exec "$@"' \
    sh bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
need cryptsetup python3
BIN=$TOOL
ASK=$WORK/ask
mkdir -m 0755 "$ASK"
export PCSCLITE_CSOCK_NAME=$WORK/no-pcscd/pcscd.comm
OPTS=(--ask-dir "$ASK" --card-luks1-dir "$STORE" --cache-dir "$LOCKS")
P="crypt-agent enroll: "

# all_prefixed FILE: every line of FILE starts with the prefix.
all_prefixed() {
  local bad
  bad=$(grep -v "^$P" "$1" || true)
  [ -z "$bad" ] || fail "lines without the prefix in $(basename "$1"): $bad"
}

make_volume "$WORK/a.luks2" luks2
truncate -s 4M "$WORK/plain.img"

# 1. Not LUKS: no card wait at all.
"$BIN" enroll --passphrase-stdin "${OPTS[@]}" --card-wait 60 "$WORK/plain.img" < "$WORK/pass" > "$WORK/1.out" 2> "$WORK/1.err"
rc=$?
[ $rc = 1 ] || fail "not LUKS: exit $rc: $(cat "$WORK/1.err")"
grep -q "^${P}$WORK/plain.img: failed: no LUKS header could be read" "$WORK/1.err" || fail "not LUKS: $(cat "$WORK/1.err")"
grep -q "waiting for" "$WORK/1.err" && fail "not LUKS: it waited: $(cat "$WORK/1.err")"
grep -q "^${P}0 of 1 volumes done, 1 failed; card operations: 0$" "$WORK/1.err" || fail "not LUKS summary: $(cat "$WORK/1.err")"
all_prefixed "$WORK/1.err"
echo "ok: a file that is not LUKS fails before any card wait; card operations: 0"

# 2. A LUKS volume, no card: the wait is said, nothing reached a card.
"$BIN" enroll --passphrase-stdin "${OPTS[@]}" --card-wait 2 "$WORK/plain.img" "$WORK/a.luks2" < "$WORK/pass" \
  > "$WORK/2.out" 2> "$WORK/2.err"
rc=$?
[ $rc = 1 ] || fail "no card: exit $rc: $(cat "$WORK/2.err")"
grep -qx "${P}waiting for a card in any reader (up to 2 s)" "$WORK/2.err" || fail "no start line: $(cat "$WORK/2.err")"
grep -q "^${P}stopped waiting for a card in any reader: " "$WORK/2.err" || fail "no end line: $(cat "$WORK/2.err")"
[ "$(grep -c "waiting for a card" "$WORK/2.err")" = 2 ] || fail "not exactly two wait lines: $(cat "$WORK/2.err")"
grep -q "^${P}0 of 2 volumes done, 2 failed; card operations: 0$" "$WORK/2.err" || fail "no-card summary: $(cat "$WORK/2.err")"
all_prefixed "$WORK/2.err"
opens_with "$WORK/a.luks2" "$WORK/pass" || fail "a.luks2 no longer opens with the passphrase"
echo "ok: the card wait is said when it starts and ends; card operations: 0 when no card was reached"

# 3. The passphrase wait.
"$BIN" enroll "${OPTS[@]}" --card-wait 1 "$WORK/a.luks2" < /dev/null > "$WORK/3.out" 2> "$WORK/3.err" &
pid=$!
sock=""
for _ in $(seq 400); do
  for f in "$ASK"/ask.*; do
    [ -e "$f" ] && grep -q "^Id=crypt-agent:enroll:$WORK/a.luks2\$" "$f" && sock=$(sed -n 's/^Socket=//p' "$f")
  done
  [ -n "$sock" ] && break
  sleep 0.05
done
[ -n "$sock" ] || { kill "$pid"; wait "$pid"; fail "no passphrase question in $ASK: $(cat "$WORK/3.err")"; }
grep -q "^${P}waiting for the existing passphrase of $WORK/a.luks2 (asked through ask-password, Id crypt-agent:enroll:$WORK/a.luks2) (up to 180 s)\$" \
  "$WORK/3.err" || { kill "$pid"; wait "$pid"; fail "no passphrase wait line while asked: $(cat "$WORK/3.err")"; }
printf '%s' "$PASSPHRASE" | /lib/systemd/systemd-reply-password 1 "$sock"
wait "$pid"
grep -qx "${P}passphrase for $WORK/a.luks2 received" "$WORK/3.err" || fail "no end of the passphrase wait: $(cat "$WORK/3.err")"
grep -q "card operations: 0$" "$WORK/3.err" || fail "passphrase run summary: $(cat "$WORK/3.err")"
all_prefixed "$WORK/3.err"
assert_no_secrets_in "$WORK/3.err"
echo "ok: the passphrase wait is said when it starts and ends"

# 4. On a terminal: a status line, redrawn in place and erased.
TERM=dumb script -qec "$(printf '%q ' "$BIN" enroll --passphrase-stdin "${OPTS[@]}" --card-wait 3 "$WORK/a.luks2") < $(printf '%q' "$WORK/pass")" \
  /dev/null > "$WORK/4.tty" 2>&1
python3 - "$WORK/4.tty" <<'PY' || fail "terminal form: $(cat -v "$WORK/4.tty")"
import re, sys
t = open(sys.argv[1], "rb").read().decode(errors="replace")
clear = "\r\x1b[K"
draw = clear + "crypt-agent enroll: waiting for a card in any reader (3 s left)"
assert draw in t, "no status line drawn after erasing the line"
assert "(up to 3 s)" not in t, "the start line of a non-terminal"
assert "stopped waiting for a card" not in t, "the end line of a non-terminal"
last = t.rfind("s left)")
assert clear in t[last:], "the status line is not erased at the end"
assert re.search(r"0 of 1 volumes done, 1 failed; card operations: 0", t[last:]), "no summary after the wait"
PY
echo "ok: on a terminal the wait is a status line, redrawn with \\r and erased"

# 5. libcryptsetup's messages: prefixed, debug lines only at debug.
mkdir "$WORK/dir"
cp "$WORK/a.luks2" "$WORK/corrupt.luks2"
dd if=/dev/zero of="$WORK/corrupt.luks2" bs=4096 count=8 conv=notrunc status=none          # primary header
dd if=/dev/zero of="$WORK/corrupt.luks2" bs=4096 seek=4 count=8 conv=notrunc status=none   # secondary header
for level in info debug; do
  printf 'not the passphrase\n' | "$BIN" enroll --dry-run --passphrase-stdin "${OPTS[@]}" --log-level $level \
    "$WORK/missing.img" "$WORK/dir" "$WORK/corrupt.luks2" "$WORK/a.luks2" > "$WORK/5.$level.out" 2> "$WORK/5.$level.err"
  all_prefixed "$WORK/5.$level.err"
  grep -q "^${P}$WORK/missing.img: failed: cannot open: Device $WORK/missing.img does not exist or access denied.$" \
    "$WORK/5.$level.err" || fail "missing file ($level): $(grep missing.img "$WORK/5.$level.err")"
  grep -q "^${P}$WORK/a.luks2: failed: the given passphrase does not open it" "$WORK/5.$level.err" \
    || fail "wrong passphrase ($level): $(cat "$WORK/5.$level.err")"
done
[ "$(grep -c "^${P}libcryptsetup: " "$WORK/5.info.err")" = 0 ] || fail "libcryptsetup lines at info: $(grep libcryptsetup "$WORK/5.info.err")"
[ "$(grep -c "^${P}libcryptsetup: " "$WORK/5.debug.err")" -gt 10 ] || fail "no libcryptsetup debug lines at debug"
grep -q "^${P}libcryptsetup: .*$WORK/corrupt.luks2" "$WORK/5.debug.err" || fail "nothing from libcryptsetup about the corrupt header"
assert_no_secrets_in "$WORK/5.debug.err"
echo "ok: libcryptsetup speaks through the log with the prefix; its debug lines only at debug ($(grep -c libcryptsetup "$WORK/5.debug.err") lines)"
echo "PASS"
