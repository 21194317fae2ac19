#!/bin/bash
# SPDX-License-Identifier: MIT
# package.install-fresh-root: the .deb of package.build installed the way a
# person would, `apt install ./crypt-agent_*.deb`, into a fresh minbase root
# of this machine's release made by mmdebstrap from this machine's mirror.
# Then, inside that root: `crypt-agent --version` and `crypt-agent list`
# work, and `crypt-agent list --json=short` prints valid JSON (python3's
# json.tool judges); `systemd-analyze verify` of the installed units is clean (man pages
# of Documentation= included); the units are enabled and the maintainer
# scripts started neither crypt-agent.service nor crypt-agent-finish.service
# (a logging stand-in for systemctl records what they asked, with
# /run/systemd/system present so deb-systemd-invoke believes systemd runs);
# a generic dracut image gets the agent only when asked (`--add crypt-agent`),
# and then `lsinitrd` shows it with its units.
# The base root (without crypt-agent) is cached as BUILD_DIR/package/base-*.tar.
#   CRYPT_AGENT_PACKAGE_TRANSCRIPT=FILE  also write there what a person would see: the
#       commands (apt install, --version, list --json, systemd-analyze verify, dracut and
#       lsinitrd) and their output, for a release note
set -euo pipefail
skip() { echo "SKIP: $*"; exit 77; }
SRC=${CRYPT_AGENT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=${CRYPT_AGENT_PACKAGE_DIR:-${CRYPT_AGENT_BUILD_DIR:-$SRC/build}/package}

[ "$(id -u)" = 0 ] || skip "needs root (mmdebstrap --mode=root, chroot)"
command -v mmdebstrap >/dev/null || skip "mmdebstrap (package mmdebstrap) is missing"
deb=$(ls "$OUT"/crypt-agent_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || skip "no crypt-agent_*.deb in $OUT (package.build makes it)"

. /etc/os-release
SUITE=${VERSION_CODENAME:?}
MIRROR=$("$SRC/tests/apt-mirror.sh" | head -n 1)
# python3: judges the JSON of `crypt-agent list --json` (json.tool).
PACKAGES="apt systemd dracut man-db python3"
BASE=$OUT/base-$SUITE-$(echo "$PACKAGES $MIRROR" | sha256sum | cut -c1-12).tar
start=$(date +%s)
if [ ! -s "$BASE" ]; then
    rm -rf "$OUT"/base-*.tar
    mmdebstrap --quiet --mode=root --variant=minbase --include="${PACKAGES// /,}" \
        "$SUITE" "${BASE%.tar}.tmp.tar" ${MIRROR:+"$MIRROR"} || { echo "FAIL mmdebstrap"; exit 1; }
    mv "${BASE%.tar}.tmp.tar" "$BASE"
    echo "info mmdebstrap $SUITE (${MIRROR:-default mirror}): $(( $(date +%s) - start )) s"
fi

T=$(mktemp -d)
R=$T/root
cleanup() {
    # The mounts live in a private namespace (unshare -m) and end with it.
    rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$R"; tar -C "$R" -xf "$BASE"
cp "$deb" "$R/root/"
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
mkdir -p "$R/usr/local/sbin"
# The stand-in for systemctl during the installation: records every call.
cat > "$R/usr/local/sbin/systemctl" <<'STUB'
#!/bin/sh
echo "systemctl $*" >> /run/systemctl-calls
case "$*" in *is-active*) exit 1 ;; *is-enabled*) echo enabled ;; esac
exit 0
STUB
chmod 755 "$R/usr/local/sbin/systemctl"

# Everything inside runs in one private mount namespace with /proc, /sys,
# /dev and a tmpfs /run, so nothing leaks to this machine.
cat > "$R/root/inside.sh" <<'INSIDE'
#!/bin/bash
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
# The transcript: a command as a person types it, then what it printed.
say() { printf '# %s\n' "$1" >> /root/transcript; if [ $# -gt 1 ]; then printf '%s\n' "$2" >> /root/transcript; fi; }
mkdir -p /run/systemd/system /run/systemd/ask-password
apt-get -qq update >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; echo "FAIL apt-get update"; exit 1; }
cd /root
deb=$(ls crypt-agent_*.deb)
say "$(. /etc/os-release && echo "$PRETTY_NAME"), fresh minbase root (mmdebstrap: apt systemd dracut man-db python3)"
if apt install -y --no-install-recommends "./$deb" >/tmp/apt.log 2>&1; then
    ok "apt install ./$deb"
    # Without apt's warning about scripts; of dpkg's progress counter (lines redrawn after
    # a carriage return) what a terminal shows last.
    say "apt install ./$deb" "$(grep -v 'does not have a stable CLI' /tmp/apt.log | sed '/./,$!d' | sed 's/\r$//; s/.*\r//')"
else cat /tmp/apt.log; echo "FAIL apt install"; exit 1; fi
cd /
calls=$(cat /run/systemctl-calls 2>/dev/null || true)
# The stand-in must see what deb-systemd-invoke asks, or the check proves nothing.
deb-systemd-invoke start crypt-agent.path >/dev/null 2>&1 || true
grep -q 'start.*crypt-agent.path' /run/systemctl-calls 2>/dev/null \
    && ok "the systemctl stand-in records deb-systemd-invoke's requests" \
    || bad "the systemctl stand-in recorded nothing from deb-systemd-invoke"
rm -f /usr/local/sbin/systemctl
echo "info the maintainer scripts asked systemctl:"; sed 's/^/     /' <<< "${calls:-(nothing)}"
if grep -E '(^| )(start|restart|try-restart|reload-or-restart)( |$)' <<< "$calls" | grep -qE 'crypt-agent(-finish)?\.service'; then
    bad "a maintainer script started crypt-agent.service or crypt-agent-finish.service"
else ok "crypt-agent.service and crypt-agent-finish.service not started"; fi
rmdir /run/systemd/system

v=$(crypt-agent --version 2>&1) && ok "crypt-agent --version: $v" || bad "crypt-agent --version: $v"
say "crypt-agent --version" "$v"
l=$(crypt-agent list 2>&1) && ok "crypt-agent list: ${l:-(empty)}" || bad "crypt-agent list: $l"
# --json=short: one line of JSON (an empty list here: no question is pending).
if j=$(crypt-agent list --json=short 2>&1); then
    if pretty=$(python3 -m json.tool <<< "$j" 2>&1); then ok "crypt-agent list --json=short: valid JSON: $j"
    else bad "crypt-agent list --json=short is not JSON ($pretty): $j"; fi
else bad "crypt-agent list --json=short failed: $j"; fi
say "crypt-agent list --json=short" "$j"
say "crypt-agent list --json=short | python3 -m json.tool" "${pretty:-}"
# The libraries the agent loads with dlopen on first use (no DT_NEEDED, so only the package's
# Depends brings them): each must be there after `apt install` into a fresh root.
for so in libcryptsetup.so.12 libpcsclite.so.1 libcrypto.so.3; do
    ldconfig -p | grep -qE "^[[:space:]]+$so " && ok "$so installed (loaded with dlopen)" \
        || bad "$so missing after apt install: the package's Depends lacks what holds it"
done
[ "$(command -v crypt-agent)" = /usr/sbin/crypt-agent ] && ok "/usr/sbin/crypt-agent" || bad "crypt-agent is $(command -v crypt-agent)"

units="crypt-agent.path crypt-agent.service crypt-agent-finish.service"
vrc=0; out=$(systemd-analyze verify $units 2>&1) || vrc=$?
[ $vrc = 0 ] && [ -z "$out" ] && ok "systemd-analyze verify $units: clean" \
    || { bad "systemd-analyze verify (exit $vrc):"; sed 's/^/     /' <<< "$out"; }
say "systemd-analyze verify $units; echo \$?" "${out:+$out
}$vrc"
say "systemctl is-enabled $units" "$(systemctl is-enabled $units 2>&1)"
for u in crypt-agent.path crypt-agent-finish.service; do
    s=$(systemctl is-enabled "$u" 2>&1); [ "$s" = enabled ] && ok "$u enabled" || bad "$u is $s"
done
s=$(systemctl is-enabled crypt-agent.service 2>&1)
case $s in enabled|indirect|static) ok "crypt-agent.service $s (started by crypt-agent.path)" ;; *) bad "crypt-agent.service is $s" ;; esac

kver=$(uname -r)
img=/tmp/initrd.img
if dracut --quiet --force --no-hostonly --no-kernel --no-compress "$img" "$kver" >/tmp/dracut.log 2>&1; then
    if lsinitrd "$img" | grep -q 'usr/sbin/crypt-agent'; then bad "a generic image without --add got the agent"
    else ok "a generic image without configuration or --add has no agent (check returns 255)"; fi
    say "dracut --quiet --force --no-hostonly --no-kernel --no-compress $img $kver; lsinitrd $img | grep -c crypt-agent" \
        "$(lsinitrd "$img" | grep -c crypt-agent)"
else cat /tmp/dracut.log; bad "dracut (generic)"; fi
if dracut --quiet --force --no-hostonly --no-kernel --no-compress --add crypt-agent "$img" "$kver" >/tmp/dracut.log 2>&1; then
    c=$(lsinitrd "$img")
    for f in usr/sbin/crypt-agent crypt-agent.path crypt-agent.service crypt-agent.service.d/50-initrd.conf \
             crypt-agent.path.d/50-initrd.conf sysinit.target.wants/crypt-agent.path; do
        grep -q "$f" <<< "$c" && ok "lsinitrd: $f" || bad "lsinitrd: no $f"
    done
    ! grep -q libifdvpcd <<< "$c" || bad "the image has the vpcd test driver"
    say "dracut --quiet --force --no-hostonly --no-kernel --no-compress --add crypt-agent $img $kver; lsinitrd $img | grep crypt-agent" \
        "$(grep crypt-agent <<< "$c")"
    echo "info dracut image with the agent: $(du -k "$img" | cut -f1) KiB uncompressed"
else cat /tmp/dracut.log; bad "dracut --add crypt-agent"; fi
exit $fail
INSIDE
chmod 755 "$R/root/inside.sh"

rc=0
: > "$R/root/transcript"
unshare -m --propagation private /bin/bash -c '
    set -e; R=$1
    mount --bind "$R" "$R"
    mount -t proc proc "$R/proc"; mount -t sysfs sysfs "$R/sys"
    mount --rbind /dev "$R/dev"; mount -t tmpfs -o mode=755 tmpfs "$R/run"; mount -t tmpfs tmpfs "$R/tmp"
    exec chroot "$R" /root/inside.sh' _ "$R" || rc=$?
if [ -n "${CRYPT_AGENT_PACKAGE_TRANSCRIPT:-}" ]; then
    cp "$R/root/transcript" "$CRYPT_AGENT_PACKAGE_TRANSCRIPT"
    echo "info transcript in $CRYPT_AGENT_PACKAGE_TRANSCRIPT"
fi
echo "info package.install-fresh-root: $(( $(date +%s) - start )) s"
exit $rc
