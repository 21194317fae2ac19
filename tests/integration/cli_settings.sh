#!/bin/bash
# SPDX-License-Identifier: MIT
# One vocabulary (issue 13 items 5, 10, 11): every command reads the configuration file
# and takes every setting on its command line, through one parser.
#   1. Each command with --config FILE holding a bad value refuses with FILE:LINE and the
#      reason (so it read the file), and with --log-level of a bad value names the option.
#   2. The card settings have one name everywhere: enroll/rotate/card take --card-*,
#      and the old names (--luks1-store, --reader, --lock-dir, --seed-file) are refused.
#   3. `crypt-agent config` prints every setting as "name = value"; its output is itself
#      a configuration that loads to the same output; the command line wins over the file.
#   4. Trailing comments: "key = value   # comment" works; a path never takes the comment.
#   5. A configuration another user could write (group/other-writable, not owned by root,
#      or a symlink to such a file) is refused with the file and the reason.
#   6. Every line of the shipped example, uncommented, loads (`config` exits 0).
# Nothing here touches the machine: no command gets past its settings except `config`
# and `list` (on a private ask directory).
set -u
BIN=${CRYPT_AGENT_BIN:?CRYPT_AGENT_BIN not set}
SRC=${CRYPT_AGENT_SOURCE_DIR:?CRYPT_AGENT_SOURCE_DIR not set}
T=$(mktemp -d /tmp/crypt-agent-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
failures=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }
write() { local f=$1; shift; printf '%s\n' "$@" > "$f"; chmod 0644 "$f"; }

write "$T/bad.conf" "[crypt-agent]" "keyring = everywhere"
write "$T/empty.conf"
COMMANDS=("serve" "list" "cache put" "cache status" "cache flush" "finish" "card status" "card derive"
          "card watch" "enroll" "rotate" "config")
for c in "${COMMANDS[@]}"; do
    read -ra words <<< "$c"
    out=$("$BIN" "${words[@]}" --config "$T/bad.conf" --ask-dir "$T/ask" --cache-dir "$T/cache" </dev/null 2>&1); rc=$?
    if [ $rc = 2 ] && [[ $out == *"$T/bad.conf:2: keyring must be 'user' or 'session', not 'everywhere'"* ]]; then
        ok "$c reads --config (bad value refused with file, line and reason)"
    else bad "$c --config: exit $rc: $out"; fi
    out=$("$BIN" "${words[@]}" --config "$T/empty.conf" --log-level loud --ask-dir "$T/ask" </dev/null 2>&1); rc=$?
    if [ $rc = 2 ] && [[ $out == *"--log-level must be one of"* ]]; then ok "$c takes --log-level"
    else bad "$c --log-level loud: exit $rc: $out"; fi
    # Each setting is an option of this command: with a good value it passes, and the bad
    # --keyring after it stops the command before it does anything (never a real serve).
    for opt in --cache-dir --ask-dir --card-reader --card-luks1-dir --card-wait --card-crypttab --match; do
        val=/x; [ $opt = --card-wait ] && val=3
        out=$("$BIN" "${words[@]}" --config "$T/empty.conf" $opt "$val" --keyring bogus </dev/null 2>&1); rc=$?
        [ $rc = 2 ] && [[ $out == *"--keyring must be"* ]] || bad "$c $opt $val: not taken (exit $rc): $out"
    done
done
ok "every command takes --keyring, --cache-dir, --ask-dir, --card-reader, --card-luks1-dir, --card-wait, --card-crypttab, --match"

for old in --luks1-store --lock-dir --reader --seed-file --no-pin --watchdog; do
    for c in enroll rotate "card derive"; do
        read -ra words <<< "$c"
        out=$("$BIN" "${words[@]}" --config "$T/empty.conf" $old /x vol </dev/null 2>&1); rc=$?
        [ $rc = 2 ] || bad "$c still takes $old (exit $rc): $out"
    done
done
ok "the old option names are gone from enroll, rotate and card"

# list on a private ask directory: it uses --ask-dir, not the machine's.
mkdir -m 0755 "$T/ask"
out=$("$BIN" list --config "$T/empty.conf" --ask-dir "$T/ask" 2>&1)
[[ $out == "no questions in $T/ask" ]] && ok "list uses --ask-dir" || bad "list --ask-dir: $out"

# 3. config: every setting of the table, round trip, command line wins.
"$BIN" config --config "$T/empty.conf" > "$T/defaults.out" 2>&1 || bad "config with an empty file: $(cat "$T/defaults.out")"
for name in ask-dir keyring cache-dir log-level phase match cache-lifetime harvest systemd-entry push-systemd \
            systemd-key-name rotate-on-finish card-enable card-volume card-seed-file card-luks-tokens card-luks1-dir \
            card-crypttab card-reader card-aid card-command card-challenge-length card-pin-reference card-watchdog \
            card-pin-timeout card-wait card-allow-last-pin-try card-early card-early-wait card-prepare-rotation; do
    grep -q "^$name =" "$T/defaults.out" || bad "config does not print $name"
done
grep -qx "card-luks1-dir = /boot/crypt-agent" "$T/defaults.out" || grep -q "^card-luks1-dir = /" "$T/defaults.out" \
    || bad "no default LUKS1 store"
ok "config prints every setting ($(wc -l < "$T/defaults.out") lines)"
write "$T/some.conf" "match = vpn:*" "match = cryptsetup:*" "card-volume = cryptsetup:/dev/vda2 0b7c5a6e-2f3d-4a1b-9c8d-7e6f5a4b3c2d" \
    "card-aid = A000000001" "card-watchdog = 2.5" "card-pin-reference = none" "cache-lifetime = 1h"
"$BIN" config --config "$T/some.conf" > "$T/some.out" 2>&1 || bad "config: $(cat "$T/some.out")"
cp "$T/some.out" "$T/round.conf"; chmod 0644 "$T/round.conf"
"$BIN" config --config "$T/round.conf" > "$T/round.out" 2>&1 || bad "config of config's output: $(cat "$T/round.out")"
cmp -s "$T/some.out" "$T/round.out" && ok "config's output loads to the same settings" \
    || bad "round trip differs: $(diff "$T/some.out" "$T/round.out")"
grep -qx "card-watchdog = 2.5" "$T/some.out" && grep -qx "card-aid = A000000001" "$T/some.out" \
    && grep -qx "cache-lifetime = 3600s" "$T/some.out" && [ "$(grep -c '^match = ' "$T/some.out")" = 2 ] \
    || bad "config shows other values: $(cat "$T/some.out")"
out=$("$BIN" config --config "$T/some.conf" --card-watchdog 7 --match 'x:*' 2>&1)
[[ $out == *"card-watchdog = 7"* ]] && [ "$(grep -c '^match = ' <<< "$out")" = 1 ] \
    && ok "the command line wins over the file (a repeated setting is replaced)" || bad "command line vs file: $out"

# 4. Trailing comments.
write "$T/comments.conf" "card-enable = yes   # answer enrolled volumes" "card-luks1-dir = /srv/seeds # the store" \
    "match = vpn#1" "	card-reader = Virtual PCD	# tab before the comment"
out=$("$BIN" config --config "$T/comments.conf" 2>&1); rc=$?
if [ $rc = 0 ] && [[ $out == *"card-enable = yes"* ]] && grep -qx "card-luks1-dir = /srv/seeds" <<< "$out" \
        && grep -qx "match = vpn#1" <<< "$out" && grep -qx "card-reader = Virtual PCD" <<< "$out"; then
    ok "trailing comments are comments; '#' inside a word is kept"
else bad "trailing comments (exit $rc): $out"; fi

# 5. A configuration another user could write.
write "$T/open.conf" "match = *"; chmod 0666 "$T/open.conf"
out=$("$BIN" config --config "$T/open.conf" 2>&1); rc=$?
[ $rc = 2 ] && [[ $out == *"$T/open.conf: configuration file refused: writable by other users (mode 0666)"* ]] \
    && ok "an other-writable configuration is refused with file and reason" || bad "0666 config (exit $rc): $out"
chmod 0664 "$T/open.conf"
out=$("$BIN" serve --config "$T/open.conf" --ask-dir "$T/ask" 2>&1); rc=$?
[ $rc = 2 ] && [[ $out == *"writable by its group (mode 0664)"* ]] && ok "serve refuses a group-writable configuration at start" \
    || bad "0664 config (exit $rc): $out"
ln -s "$T/open.conf" "$T/link.conf"
out=$("$BIN" config --config "$T/link.conf" 2>&1); rc=$?
[ $rc = 2 ] && [[ $out == *"refused: writable by its group"* ]] && ok "a symlink to such a file is refused" \
    || bad "symlink to a 0664 config (exit $rc): $out"
if [ "$(id -u)" = 0 ]; then
    write "$T/theirs.conf" "match = *"; chown 65534 "$T/theirs.conf"
    out=$("$BIN" config --config "$T/theirs.conf" 2>&1); rc=$?
    [ $rc = 2 ] && [[ $out == *"refused: owned by uid 65534, not by root"* ]] && ok "a file owned by another user is refused" \
        || bad "config owned by 65534 (exit $rc): $out"
else
    echo "note: not root, the owner check is not exercised"
fi

# 6. The shipped example, every setting line uncommented.
sed -E 's/^#([a-z][a-z0-9-]* *=)/\1/' "$SRC/agent/crypt-agent.conf.example" > "$T/example.conf"; chmod 0644 "$T/example.conf"
n=$(grep -cE '^[a-z][a-z0-9-]* *=' "$T/example.conf")
out=$("$BIN" config --config "$T/example.conf" 2>&1); rc=$?
if [ $rc = 0 ] && [ "$n" -gt 20 ] && grep -qx "card-enable = yes" <<< "$out" && grep -qx "card-reader = Virtual PCD" <<< "$out" \
        && grep -qx "card-luks1-dir = /boot/crypt-agent" <<< "$out" && grep -qx "card-early = auto" <<< "$out"; then
    ok "the shipped example with its $n settings uncommented loads, trailing comments and all"
else bad "the uncommented example (exit $rc, $n settings): $out"; fi

# 7. (issue 16) Every command's --help has a Usage line naming it; `card --help` works.
for c in "${COMMANDS[@]}"; do
    read -ra words <<< "$c"
    out=$("$BIN" "${words[@]}" --help 2>&1); rc=$?
    [ $rc = 0 ] && grep -q "^Usage: crypt-agent ${words[0]}" <<< "$out" || bad "$c --help (exit $rc): $(head -3 <<< "$out")"
    grep -q "arg\b" <<< "$out" && bad "$c --help shows Boost's 'arg' placeholder"
done
ok "every command's --help has a Usage line and named placeholders"
# Errors name the command and give the reason with the errno text.
out=$("$BIN" list --config "$T/nonexistent.conf" 2>&1); rc=$?
[ $rc = 2 ] && [[ $out == "crypt-agent list: $T/nonexistent.conf: cannot open the configuration file: No such file or directory"* ]] \
    && ok "one error form: crypt-agent COMMAND: what: reason" || bad "missing config (exit $rc): $out"
# Root is required where it is needed, and said so.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    chmod 0755 "$T"
    for c in "serve" "cache status" "cache flush" "finish"; do
        read -ra words <<< "$c"
        out=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$BIN" "${words[@]}" --config "$T/empty.conf" 2>&1); rc=$?
        [ $rc = 1 ] && [[ $out == "crypt-agent $c: must run as root"* ]] || bad "$c as uid 65534 (exit $rc): $out"
    done
    ok "serve, cache and finish say 'must run as root' to another user"
fi

[ $failures = 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "all checks passed"
