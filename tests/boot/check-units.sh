#!/bin/bash
# SPDX-License-Identifier: MIT
# The units as `cmake --install` renders them: `systemd-analyze verify` must
# be clean (with the installed man pages for Documentation=), the exposure
# of `systemd-analyze security --offline=true` at most 1.5 for
# crypt-agent.service and 2.0 for crypt-agent-finish.service; each unit has
# Documentation=man:crypt-agent(8) and the boot-time off switch
# (crypt_agent=off/0; rd.crypt_agent=off/0 in the dracut module's initramfs
# drop-ins), the agent ExecReload= (SIGHUP), finish RemainAfterExit=yes; and
# the dracut module must parse. No QEMU; seconds.
source "$(dirname "$0")/lib.sh"
command -v systemd-analyze >/dev/null || skip "systemd-analyze (package systemd) is missing"
require_agent_binary
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
DESTDIR=$T cmake --install "$CRYPT_AGENT_BUILD_DIR" --prefix /usr >/dev/null
[ -x "$T/usr/sbin/crypt-agent" ] || { echo "FAIL cmake --install put no usr/sbin/crypt-agent"; exit 1; }
# ExecReload=kill: verify looks for it in the root, as on a machine with procps
# (a dependency of the package).
kill_bin=$(type -P kill) || skip "kill (package procps) is missing"
install -D -m 755 "$kill_bin" "$T/usr/bin/kill"
unitdir=$(dirname "$(find "$T" -name crypt-agent.path)")
fail=0

# verify checks Documentation=man: pages with man(1): point it at the installed ones.
man_args=(); command -v man >/dev/null || man_args=(--man=no)
if out=$(MANPATH=$T/usr/share/man systemd-analyze verify "${man_args[@]}" --root="$T" \
             crypt-agent.path crypt-agent.service crypt-agent-finish.service 2>&1) \
        && [ -z "$out" ]; then
    echo "ok   systemd-analyze verify: clean"
else
    echo "FAIL systemd-analyze verify:"; echo "$out" | sed 's/^/     /'; fail=1
fi

[ ${#man_args[@]} = 0 ] || echo "info man (man-db) is missing: Documentation= not checked by verify"

for unit in crypt-agent.service:1.5 crypt-agent-finish.service:2.0; do
    limit=${unit#*:}; unit=${unit%:*}
    score=$(cd "$unitdir" && systemd-analyze security --offline=true "./$unit" 2>/dev/null |
            sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    [ -n "$score" ] || { echo "FAIL no exposure score for $unit"; fail=1; continue; }
    if awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s <= l) }'; then echo "ok   $unit exposure $score (at most $limit)"
    else echo "FAIL $unit exposure $score (more than $limit)"; fail=1; fi
done

# has FILE LINE: the unit (or drop-in) carries this exact line.
has() {
    if grep -qxF -- "$2" "$1"; then echo "ok   ${1##*/}: $2"; else echo "FAIL ${1##*/} lacks: $2"; fail=1; fi
}
for u in crypt-agent.path crypt-agent.service crypt-agent-finish.service; do
    grep -q '^Documentation=.*man:crypt-agent(8)' "$unitdir/$u" && echo "ok   $u: Documentation=man:crypt-agent(8)" \
        || { echo "FAIL $u lacks Documentation=man:crypt-agent(8)"; fail=1; }
    has "$unitdir/$u" 'ConditionKernelCommandLine=!crypt_agent=off'
    has "$unitdir/$u" 'ConditionKernelCommandLine=!crypt_agent=0'
done
has "$unitdir/crypt-agent.service" 'ExecReload=kill -HUP $MAINPID'
has "$unitdir/crypt-agent-finish.service" 'RemainAfterExit=yes'
moddir=$(dirname "$(find "$T" -path '*91crypt-agent/module-setup.sh')")
for d in crypt-agent-initrd.conf crypt-agent-initrd-path.conf; do
    has "$moddir/$d" 'ConditionKernelCommandLine=!rd.crypt_agent=off'
    has "$moddir/$d" 'ConditionKernelCommandLine=!rd.crypt_agent=0'
done
# The off switch is documented where an administrator looks.
for w in 'crypt_agent=off' 'rd.crypt_agent=off'; do
    grep -qF "$w" "$T/usr/share/man/man8/crypt-agent.8" \
        && echo "ok   crypt-agent(8) documents $w" || { echo "FAIL crypt-agent(8) does not document $w"; fail=1; }
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
