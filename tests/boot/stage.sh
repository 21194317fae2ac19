#!/bin/bash
# SPDX-License-Identifier: MIT
# Install the project (`cmake --install`, prefix /usr) into $BOOT_WORK/stage:
# the one tree both the initramfs (through the dracut module) and the real
# root take the agent, its units and the dracut module from.
#   CONF=FILE  also install FILE as /etc/crypt-agent.conf in the stage
source "$(dirname "$0")/lib.sh"
require_boot_tools
require_agent_binary
STAGE=$BOOT_WORK/stage
rm -rf "$STAGE"; mkdir -p "$STAGE"
DESTDIR=$STAGE cmake --install "$CRYPT_AGENT_BUILD_DIR" --prefix /usr >/dev/null
[ -x "$STAGE/usr/sbin/crypt-agent" ] || die "cmake --install put no usr/sbin/crypt-agent into $STAGE"
if [ -n "${CONF:-}" ]; then install -D -m 644 "$CONF" "$STAGE/etc/crypt-agent.conf"; fi
log "staged: $(cd "$STAGE" && find . -type f | sort | tr '\n' ' ')"
