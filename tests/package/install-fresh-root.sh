#!/bin/bash
# SPDX-License-Identifier: MIT
# package.install-fresh-root: the .deb of package.build installed the way a
# person would, `apt install ./crypt-agent_*.deb`, into a fresh minbase root
# of this machine's release made by mmdebstrap from this machine's mirror.
# Then, inside that root: `crypt-agent --version` and `crypt-agent list`
# work; `systemd-analyze verify` of the installed units is clean (man pages
# of Documentation= included); the units are enabled and the maintainer
# scripts started neither crypt-agent.service nor crypt-agent-finish.service
# (a logging stand-in for systemctl records what they asked, with
# /run/systemd/system present so deb-systemd-invoke believes systemd runs);
# a generic dracut image gets the agent only when asked (`--add crypt-agent`),
# and then `lsinitrd` shows it with its units.
# The base root (without crypt-agent) is cached as BUILD_DIR/package/base-*.tar.
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
MIRROR=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
PACKAGES="apt systemd dracut man-db"
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
mkdir -p /run/systemd/system /run/systemd/ask-password
apt-get -qq update >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; echo "FAIL apt-get update"; exit 1; }
if apt-get install -y -qq --no-install-recommends /root/crypt-agent_*.deb >/tmp/apt.log 2>&1; then
    ok "apt install ./$(cd /root && ls crypt-agent_*.deb)"
else cat /tmp/apt.log; echo "FAIL apt install"; exit 1; fi
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
l=$(crypt-agent list 2>&1) && ok "crypt-agent list: ${l:-(empty)}" || bad "crypt-agent list: $l"
[ "$(command -v crypt-agent)" = /usr/sbin/crypt-agent ] && ok "/usr/sbin/crypt-agent" || bad "crypt-agent is $(command -v crypt-agent)"

units="crypt-agent.path crypt-agent.service crypt-agent-finish.service"
out=$(systemd-analyze verify $units 2>&1) && [ -z "$out" ] && ok "systemd-analyze verify $units: clean" \
    || { bad "systemd-analyze verify:"; sed 's/^/     /' <<< "$out"; }
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
else cat /tmp/dracut.log; bad "dracut (generic)"; fi
if dracut --quiet --force --no-hostonly --no-kernel --no-compress --add crypt-agent "$img" "$kver" >/tmp/dracut.log 2>&1; then
    c=$(lsinitrd "$img")
    for f in usr/sbin/crypt-agent crypt-agent.path crypt-agent.service crypt-agent.service.d/50-initrd.conf \
             crypt-agent.path.d/50-initrd.conf sysinit.target.wants/crypt-agent.path; do
        grep -q "$f" <<< "$c" && ok "lsinitrd: $f" || bad "lsinitrd: no $f"
    done
    ! grep -q libifdvpcd <<< "$c" || bad "the image has the vpcd test driver"
    echo "info dracut image with the agent: $(du -k "$img" | cut -f1) KiB uncompressed"
else cat /tmp/dracut.log; bad "dracut --add crypt-agent"; fi
exit $fail
INSIDE
chmod 755 "$R/root/inside.sh"

rc=0
unshare -m --propagation private /bin/bash -c '
    set -e; R=$1
    mount --bind "$R" "$R"
    mount -t proc proc "$R/proc"; mount -t sysfs sysfs "$R/sys"
    mount --rbind /dev "$R/dev"; mount -t tmpfs -o mode=755 tmpfs "$R/run"; mount -t tmpfs tmpfs "$R/tmp"
    exec chroot "$R" /root/inside.sh' _ "$R" || rc=$?
echo "info package.install-fresh-root: $(( $(date +%s) - start )) s"
exit $rc
