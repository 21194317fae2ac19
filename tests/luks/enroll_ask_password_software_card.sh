#!/bin/bash
# SPDX-License-Identifier: MIT
# enroll without --passphrase-stdin asks each volume's existing passphrase
# through the ask-password protocol (Id crypt-agent:enroll:VOLUME) in the ask
# directory given by --ask-dir (issue 13 item 11: it used to ask on the real
# /run/systemd/ask-password whatever --ask-dir said; this test then timed out),
# answered here by systemd's own reply sender, as a password agent would.  A
# wrong answer fails that volume alone.  Private mount namespace: tmpfs on
# /run/systemd, so even a regression never reaches the machine's directory.
# Software card: computes what the virtual card answers (see software_card.hpp).
if [ "${LUKS_ISOLATED:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "SKIP: needs root" >&2; exit 77; }
  for c in systemd-ask-password unshare; do command -v $c >/dev/null || { echo "SKIP: $c missing"; exit 77; }; done
  [ -x /lib/systemd/systemd-reply-password ] || { echo "SKIP: /lib/systemd/systemd-reply-password missing"; exit 77; }
  exec env LUKS_ISOLATED=1 unshare -m --propagation private \
    sh -c 'mount -t tmpfs -o mode=0755 tmpfs /run/systemd && mkdir -p /run/systemd/ask-password && exec "$@"' \
    sh bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
need cryptsetup
ASK=$WORK/ask
mkdir -m 0755 "$ASK"

# answer ID-SUFFIX PASSPHRASE: waits for the question whose Id ends so, replies.
answer() {
  local f sock end=$(( $(date +%s) + 20 ))
  while [ "$(date +%s)" -lt $end ]; do
    for f in "$ASK"/ask.*; do
      [ -e "$f" ] && grep -q "^Id=crypt-agent:enroll:.*$1\$" "$f" || continue
      grep -q "^Message=Existing passphrase for .*$1 (crypt-agent enrolment):" "$f" || fail "prompt: $(cat "$f")"
      sock=$(sed -n 's/^Socket=//p' "$f")
      printf '%s' "$2" | /lib/systemd/systemd-reply-password 1 "$sock"
      return 0
    done
    sleep 0.05
  done
  [ -z "$(ls /run/systemd/ask-password)" ] || fail "the question went to /run/systemd/ask-password, not --ask-dir"
  fail "no question for $1 appeared in $ASK"
}

make_volume "$WORK/a.luks2" luks2; make_volume "$WORK/b.luks1" luks1
"$TOOL" enroll --ask-dir "$ASK" "${S_OPTS[@]}" "$WORK/a.luks2" "$WORK/b.luks1" < /dev/null > "$WORK/log" 2>&1 &
pid=$!
answer a.luks2 "$PASSPHRASE"
answer b.luks1 "not the passphrase"
wait $pid; rc=$?
cat "$WORK/log"
[ $rc = 1 ] || fail "want exit 1 (one volume failed), got $rc"
grep -q "a.luks2: enrolled: generation 1" "$WORK/log" || fail "a.luks2 not enrolled"
grep -q "b.luks1: failed: the given passphrase does not open it" "$WORK/log" || fail "no clear message for b.luks1"
check "$WORK/a.luks2" > /dev/null || fail "check a.luks2"
assert_no_secrets_in "$WORK/log"
echo "PASS: existing passphrases asked in --ask-dir; a wrong one fails alone"
