#!/bin/bash
# Regenerates the ask files in this folder from the real systemd-ask-password
# (run as root; private mount namespace, nothing touches the real /run/systemd).
#   tests/unit/data/capture.sh   (it enters its own mount namespace)
set -euo pipefail
OUT=$(cd "$(dirname "$0")" && pwd)
# Never on the machine's real /run/systemd: re-enter in a private mount namespace.
if [ "${CAPTURE_IN_NS:-}" != 1 ]; then
  exec env CAPTURE_IN_NS=1 unshare -m --propagation private "$0" "$@"
fi
mount -t tmpfs none /run/systemd
mkdir -p /run/systemd/ask-password
cap() {  # name, then systemd-ask-password arguments
  local name=$1; shift
  systemd-ask-password --no-tty "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 200); do f=$(ls /run/systemd/ask-password/ask.* 2>/dev/null | head -1 || true); [ -n "$f" ] && break; sleep 0.01; done
  # PIDs and socket names differ per run; keep them (they are what a real file holds).
  cp "$f" "$OUT/$name.ask"
  kill $pid; wait $pid 2>/dev/null || true
  rm -f /run/systemd/ask-password/*
}
cap plain "Password:"
cap cryptsetup --id=cryptsetup:/dev/vda2 --icon=drive-harddisk --timeout=90 "Please enter passphrase for disk root (vda2):"
cap accept-cached --id=cryptsetup:/dev/disk/by-uuid/2f1a --accept-cached --keyname=cryptsetup --timeout=0 "Passphrase:"
cap echo --echo=yes --id=pin:card "PIN:"
cap escapes --id='cryptsetup:weird "name"' $'Message with \\ backslash, "quotes", tab\there and ünïcode:'
cap silent --echo=masked --id=x "Masked:"
echo "captured: $(ls "$OUT"/*.ask | wc -l) files"
