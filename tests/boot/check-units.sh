#!/bin/bash
# The units as `cmake --install` renders them: `systemd-analyze verify` must
# be clean, crypt-agent.service's `systemd-analyze security --offline=true`
# exposure at most 2.0 (printed for crypt-agent-finish.service too), and the
# dracut module must parse. No QEMU; seconds.
source "$(dirname "$0")/lib.sh"
command -v systemd-analyze >/dev/null || skip "systemd-analyze (package systemd) is missing"
require_agent_binary
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
for c in units dracut; do
    DESTDIR=$T cmake --install "$CRYPT_AGENT_BUILD_DIR" --prefix /usr --component "$c" >/dev/null
done
install -D -m 755 "$CRYPT_AGENT_BIN" "$T/usr/bin/crypt-agent"
unitdir=$(dirname "$(find "$T" -name crypt-agent.path)")
fail=0

if out=$(systemd-analyze verify --root="$T" crypt-agent.path crypt-agent.service crypt-agent-finish.service 2>&1) \
        && [ -z "$out" ]; then
    echo "ok   systemd-analyze verify: clean"
else
    echo "FAIL systemd-analyze verify:"; echo "$out" | sed 's/^/     /'; fail=1
fi

for unit in crypt-agent.service crypt-agent-finish.service; do
    score=$(cd "$unitdir" && systemd-analyze security --offline=true "./$unit" 2>/dev/null |
            sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    [ -n "$score" ] || { echo "FAIL no exposure score for $unit"; fail=1; continue; }
    if [ "$unit" = crypt-agent.service ]; then
        if awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then echo "ok   $unit exposure $score (at most 2.0)"
        else echo "FAIL $unit exposure $score (more than 2.0)"; fail=1; fi
    else
        echo "info $unit exposure $score"
    fi
done

# card-early reads /proc/cmdline (rd.luks.uuid=): ProcSubset=pid would hide it.
if grep -q '^ProcSubset=pid' "$unitdir/crypt-agent.service"; then
    echo "FAIL crypt-agent.service has ProcSubset=pid, which hides /proc/cmdline from card-early"; fail=1
else
    echo "ok   crypt-agent.service leaves /proc/cmdline visible (no ProcSubset=pid)"
fi
# The binary's default LUKS1 seed store must be writable by finish (ProtectSystem=strict):
# asked of the binary itself, with an empty configuration (not this machine's).
: > "$T/empty.conf"
store=$("$CRYPT_AGENT_BIN" config --config "$T/empty.conf" | sed -n 's/^card-luks1-dir = //p')
rw=$(sed -n 's/^ReadWritePaths=//p' "$unitdir/crypt-agent-finish.service" | tr ' ' '\n' | sed 's/^-//')
if [ -n "$store" ] && printf '%s\n' "$rw" | grep -qxF "$store"; then
    echo "ok   crypt-agent-finish.service may write the default LUKS1 store $store"
else
    echo "FAIL the default LUKS1 store '$store' is not in crypt-agent-finish.service's ReadWritePaths: $rw"; fail=1
fi

module=$(find "$T" -path '*91crypt-agent/module-setup.sh')
if bash -n "$module"; then echo "ok   dracut module-setup.sh parses"; else echo "FAIL dracut module-setup.sh"; fail=1; fi
exit $fail
