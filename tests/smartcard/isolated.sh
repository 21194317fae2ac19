# SPDX-License-Identifier: MIT
# Sourced first by the tests that run the agent against the private card stack:
#   NEEDS="systemd-ask-password ..."; . tests/smartcard/isolated.sh; isolate "$0" "$@"
# re-runs the calling script in a private mount namespace (a tmpfs on
# /run/systemd, so the ask directory is private) and a new session keyring,
# after checking root and the commands it needs (exit 77 naming what is missing).
#
# PRIVATE_ASK: the ask directory agents watch, inside that namespace's tmpfs,
# never the machine's (the agent's own PIN question goes where agents look).
PRIVATE_ASK=/run/systemd/ask-password
isolate() {
  [ "${CA_ISOLATED:-}" = 1 ] && return 0
  [ "$(id -u)" = 0 ] || { echo "SKIP: needs root" >&2; exit 77; }
  local c
  for c in unshare keyctl ${NEEDS:-}; do
    command -v "$c" >/dev/null || { echo "SKIP: $c missing" >&2; exit 77; }
  done
  exec env CA_ISOLATED=1 unshare -m --propagation private \
    sh -c 'mount -t tmpfs -o mode=0755 tmpfs /run/systemd && mkdir -p /run/systemd/ask-password &&
           exec keyctl session - "$@"' sh bash "$@"
}
