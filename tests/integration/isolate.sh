#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs one integration test isolated from the machine.
#   isolate.sh userns COMMAND...   a private user namespace (root inside, its own user
#                                  keyring @u: the agent's default keyring and systemd's
#                                  "cryptsetup" entry never touch the machine's)
#   isolate.sh root COMMAND...     real root (for tests that need other uids), and the
#                                  agent is pointed at a private session keyring
# Both: a private mount namespace with a tmpfs on /run/systemd (its own ask directory),
# and a new session keyring that links @u, as KeyringMode=shared gives the agent's unit.
set -euo pipefail
mode=${1:?usage: isolate.sh userns|root COMMAND...}; shift
if [ "${CRYPT_AGENT_ISOLATED:-}" != 1 ]; then
  command -v systemd-ask-password >/dev/null || { echo "SKIP: systemd-ask-password is not installed (apt-get install systemd)"; exit 77; }
  command -v keyctl >/dev/null || { echo "SKIP: keyctl is not installed (apt-get install keyutils)"; exit 77; }
  case $mode in
    userns) ns=(unshare -Urm --propagation private); export CRYPT_AGENT_USERNS=1 ;;
    root)   [ "$(id -u)" = 0 ] || { echo "SKIP: this test needs root (it creates files owned by other uids)"; exit 77; }
            ns=(unshare -m --propagation private); export CRYPT_AGENT_USERNS=0 ;;
    *) echo "isolate.sh: mode must be userns or root" >&2; exit 2 ;;
  esac
  "${ns[@]}" true 2>/dev/null || { echo "SKIP: cannot create the namespaces (${ns[*]})"; exit 77; }
  exec env CRYPT_AGENT_ISOLATED=1 "${ns[@]}" "$0" "$mode" "$@"
fi
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir -p /run/systemd/ask-password
exec keyctl session - sh -c 'keyctl link @u @s >/dev/null 2>&1; exec "$@"' sh "$@"
