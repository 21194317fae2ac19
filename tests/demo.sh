#!/bin/bash
# SPDX-License-Identifier: MIT
# The main job in a self-contained demo, on a fresh Debian 12 or 13 machine (as root):
#   installs the build packages, builds crypt-agent, then in a private mount
#   namespace (its own /run/systemd/ask-password) and a private session keyring:
#   caches one secret, starts the agent, and lets the real systemd-ask-password
#   ask three cryptsetup: questions and one with another Id.  The three are
#   answered; the fourth is left alone for other agents and times out.
# Nothing touches the machine's real ask directory or root's user keyring.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" != --inside ]; then
  "$SRC/tests/setup-debian.sh" build test
  "$SRC/tests/build.sh"
  exec unshare -m --propagation private keyctl session - "$0" --inside
fi

BIN=${CRYPT_AGENT_BIN:-${BUILD_DIR:-$SRC/build}/agent/crypt-agent}
WORK=$(mktemp -d /tmp/crypt-agent-demo.XXXXXX)
mount -t tmpfs -o mode=0755 tmpfs /run/systemd      # private: this namespace only
mkdir -p /run/systemd/ask-password
AGENT=""
cleanup() { [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. cache one secret (read from stdin, kept in this demo's session keyring)"
printf 'correct horse battery staple\n' | "$BIN" cache put --keyring session --cache-dir "$WORK/cache"
"$BIN" cache status --keyring session --cache-dir "$WORK/cache"

say "2. start the agent (one process, one event loop)"
"$BIN" serve --keyring session --cache-dir "$WORK/cache" 2> "$WORK/agent.log" &
AGENT=$!
for _ in $(seq 100); do grep -q 'watching' "$WORK/agent.log" 2>/dev/null && break; sleep 0.02; done

say "3. the real systemd-ask-password asks four questions at once"
for vol in /dev/vda2 /dev/vdb1 /dev/vdc1; do
  ( out=$(systemd-ask-password --no-tty --id="cryptsetup:$vol" --timeout=10 "Passphrase for $vol:"); \
    echo "cryptsetup:$vol  -> answered: '$out'" ) &
done
( if out=$(systemd-ask-password --no-tty --id="vpn:office" --timeout=2 "VPN password:" 2>&1); then
    echo "vpn:office        -> answered: '$out' (unexpected!)"
  else
    echo "vpn:office        -> not answered by crypt-agent (left for other agents; timed out after 2 s)"
  fi ) &
wait $(jobs -p | grep -v "^$AGENT\$") 2>/dev/null || true

say "4. what the agent logged (priorities as journald records them; no secret in it)"
kill "$AGENT"; wait "$AGENT" 2>/dev/null || true; AGENT=""
cat "$WORK/agent.log"
if grep -q 'correct horse' "$WORK/agent.log"; then echo "SECRET LEAKED INTO THE LOG" >&2; exit 1; fi

say "5. finish: flush every copy of the cache"
"$BIN" finish --keyring session --cache-dir "$WORK/cache"
