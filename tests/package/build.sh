#!/bin/bash
# SPDX-License-Identifier: MIT
# package.build: `dpkg-buildpackage -us -uc -b` in a temporary copy of the
# tree, then checks of what the .deb holds: /usr/sbin/crypt-agent stripped
# (symbols in the -dbgsym), BIND_NOW and PIE, the units, the dracut module,
# the man pages, the example configuration, no test-only fault injection,
# maintainer scripts that never start crypt-agent-finish.service, the
# initramfs trigger; and lintian without errors (its warnings are printed).
# The .deb files are kept in $CRYPT_AGENT_PACKAGE_DIR (default
# BUILD_DIR/package) for package.install-fresh-root; the tree is built in
# its work/ directory, removed after a successful run (kept for a look after a
# failure).
# ccache, where installed, keeps a rebuild short.
set -euo pipefail
skip() { echo "SKIP: $*"; exit 77; }
SRC=${CRYPT_AGENT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=${CRYPT_AGENT_PACKAGE_DIR:-${CRYPT_AGENT_BUILD_DIR:-$SRC/build}/package}

missing=()
for t in dpkg-buildpackage:dpkg-dev dh:debhelper fakeroot:fakeroot lintian:lintian readelf:binutils; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t%%:*} (${t#*:})")
done
[ ${#missing[@]} = 0 ] || skip "missing: ${missing[*]} (tests/setup-debian.sh package)"
if ! deps=$(cd "$SRC" && dpkg-checkbuilddeps 2>&1); then
    skip "build dependencies: ${deps#*: }"
fi

# A fixed place outside the source tree, so that ccache finds the same paths
# (dpkg's -ffile-prefix-map names the build directory) from one run to the next.
T=$OUT/work
rm -rf "$T"; mkdir -p "$T"
version=$(cd "$SRC" && dpkg-parsechangelog -S Version)
tree=$T/crypt-agent-$version
mkdir -p "$tree"
# The tree as git knows it (tracked and new files, no build output).
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$SRC" && git ls-files -z --cached --others --exclude-standard) |
        (cd "$SRC" && tar --null --ignore-failed-read -T - -cf -) 2>/dev/null | tar -xf - -C "$tree"
else
    (cd "$SRC" && tar --exclude='./build*' --exclude=./.git -cf - .) | tar -xf - -C "$tree"
fi

[ -d /usr/lib/ccache ] && export PATH=/usr/lib/ccache:$PATH
export DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}"
start=$(date +%s)
if ! (cd "$tree" && dpkg-buildpackage -us -uc -b) > "$T/build.log" 2>&1; then
    tail -n 60 "$T/build.log"; echo "FAIL dpkg-buildpackage (log above)"; exit 1
fi
echo "info dpkg-buildpackage: $(( $(date +%s) - start )) s"

fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
arch=$(dpkg --print-architecture)
deb=$T/crypt-agent_${version}_${arch}.deb
dbg=$(ls "$T"/crypt-agent-dbgsym_${version}_${arch}.*deb 2>/dev/null | head -n 1)
[ -f "$deb" ] || { ls "$T"; bad "no $deb"; exit 1; }
echo "info $(basename "$deb"): $(du -k "$deb" | cut -f1) KiB; installed size $(dpkg-deb -f "$deb" Installed-Size) KiB"
if [ -n "$dbg" ]; then ok "debug symbols: $(basename "$dbg") ($(du -k "$dbg" | cut -f1) KiB)"; else bad "no crypt-agent-dbgsym package"; fi

X=$T/x; dpkg-deb -x "$deb" "$X"; dpkg-deb -e "$deb" "$T/control"
bin=$X/usr/sbin/crypt-agent
if [ -x "$bin" ]; then ok "/usr/sbin/crypt-agent"; else bad "no /usr/sbin/crypt-agent"; fi
[ ! -e "$X/usr/bin/crypt-agent" ] || bad "crypt-agent also in /usr/bin"
if [ -x "$bin" ]; then
    sections=$(readelf -S -W "$bin")
    if grep -qE '\.symtab|\.debug_info' <<< "$sections"; then bad "crypt-agent is not stripped"; else ok "stripped"; fi
    dyn=$(readelf -d -W "$bin")
    if grep -qE 'BIND_NOW|\(FLAGS_1\).*Flags:.* NOW\b' <<< "$dyn"; then ok "BIND_NOW"; else bad "no BIND_NOW"; fi
    if grep -qE '\(FLAGS_1\).*\bPIE\b' <<< "$dyn"; then ok "PIE"; else bad "not PIE"; fi
    # CRYPT_AGENT_LEAN_LINK (the default): libcryptsetup, pcsc-lite and libcrypto by dlopen
    # on first use, Boost and the C++ runtime linked in; nothing else is mapped at start.
    needed=$(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<< "$dyn" | sort | tr '\n' ' ')
    extra=$(tr ' ' '\n' <<< "$needed" | grep -vE '^(libc\.so\.6|libkeyutils\.so\.1|ld-linux[-a-z0-9_.]*\.so\.[0-9]+)?$' || true)
    if [ -z "$extra" ]; then ok "DT_NEEDED only: $needed"; else bad "DT_NEEDED has more than libc and libkeyutils: $needed"; fi
    if grep -qa 'CRYPT_AGENT_FAULT_' "$bin"; then bad "test-only fault injection compiled in (CRYPT_AGENT_FAULT_ strings)"
    else ok "no CRYPT_AGENT_FAULT_ strings"; fi
    echo "info crypt-agent: $(du -k "$bin" | cut -f1) KiB stripped"
fi

unitdir=$(dirname "$(find "$X" -name crypt-agent.path | head -n 1)")
for u in crypt-agent.path crypt-agent.service crypt-agent-finish.service; do
    [ -f "$unitdir/$u" ] && ok "unit ${unitdir#"$X"}/$u" || bad "no unit $u"
done
grep -q '^ExecStart=/usr/sbin/crypt-agent serve' "$unitdir/crypt-agent.service" 2>/dev/null \
    && ok "crypt-agent.service runs /usr/sbin/crypt-agent" || bad "crypt-agent.service does not run /usr/sbin/crypt-agent"
mod=$X/usr/lib/dracut/modules.d/91crypt-agent
if [ -x "$mod/module-setup.sh" ] && bash -n "$mod/module-setup.sh" && ! grep -rq '@CRYPT_AGENT' "$mod"; then
    ok "dracut module $(cd "$mod" && ls | tr '\n' ' ')"
else bad "dracut module missing, not executable or not rendered"; fi
for m in usr/share/man/man8/crypt-agent.8.gz usr/share/man/man5/crypt-agent.conf.5.gz; do
    [ -f "$X/$m" ] && ok "/$m" || bad "no /$m"
done
ex=$(ls "$X"/usr/share/doc/crypt-agent/examples/crypt-agent.conf* 2>/dev/null | head -n 1)
[ -n "$ex" ] && ok "example ${ex#"$X"}" || bad "no example under /usr/share/doc/crypt-agent/examples"
[ -f "$X/usr/share/doc/crypt-agent/copyright" ] && ok "copyright" || bad "no copyright file"

# Maintainer scripts: the three units enabled, none started on installation;
# finish not even restarted on an upgrade (try-restart of a running agent
# or path unit is fine).
post=$T/control/postinst
for u in crypt-agent.path crypt-agent.service crypt-agent-finish.service; do
    grep -q "deb-systemd-helper enable '$u'" "$post" 2>/dev/null && ok "postinst enables $u" || bad "postinst does not enable $u"
done
starts=$(grep -hE 'deb-systemd-invoke' "$post" "$T/control/prerm" 2>/dev/null | grep -vE 'deb-systemd-invoke (stop|try-restart) ' || true)
finish=$(grep -hE 'deb-systemd-invoke.*crypt-agent-finish' "$post" "$T/control/prerm" 2>/dev/null | grep -v 'invoke stop' || true)
if [ -z "$starts$finish" ]; then ok "maintainer scripts start nothing (and never restart crypt-agent-finish.service)"
else bad "maintainer scripts start units:"; printf '%s\n%s\n' "$starts" "$finish" | sed '/^$/d; s/^/     /'; fi
grep -qx 'activate-noawait update-initramfs' "$T/control/triggers" 2>/dev/null \
    && ok "trigger: activate-noawait update-initramfs" || bad "no update-initramfs trigger"

# lintian: no error; warnings and the rest are printed for the reader.
changes=$(ls "$T"/crypt-agent_*.changes | head -n 1)
lint=$(lintian --display-info --pedantic "$changes" 2>&1 | grep -v 'running with root privileges' || true)
echo "info lintian $(lintian --version | awk '{print $2}'):"; sed 's/^/     /' <<< "${lint:-(nothing)}"
if grep -q '^E: ' <<< "$lint"; then bad "lintian errors"; else ok "lintian: no error"; fi

mkdir -p "$OUT"; rm -f "$OUT"/crypt-agent*.deb "$OUT"/crypt-agent*.ddeb
cp "$deb" ${dbg:+"$dbg"} "$OUT/"
echo "info kept in $OUT: $(cd "$OUT" && ls crypt-agent* | tr '\n' ' ')"
rm -rf "$T"
exit $fail
