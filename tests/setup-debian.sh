#!/bin/bash
# SPDX-License-Identifier: MIT
# Installs what crypt-agent needs on Debian 12 (bookworm) or Debian 13 (trixie), by group:
#   build  compiler, CMake, Boost >= 1.81, libcryptsetup, pcsc-lite, keyutils, OpenSSL
#   test   the real components the tests drive: systemd-ask-password, cryptsetup,
#          keyctl, pcscd with the virtual smartcard, clang (fuzzers, LeakSanitizer),
#          libcacard's CAC card with OpenSC and p11-kit, clang-tidy and clang-format 14
#          (tests/lint, pinned: where the release has no 14, Debian 13, the lint tests skip)
#   boot   QEMU, a Debian kernel, dracut and mmdebstrap for the end-to-end boots
#   package  dpkg-buildpackage with build-essential and debhelper, lintian, mandoc (man page lint),
#          mmdebstrap for the fresh-root install (the build group has the
#          build dependencies of debian/control)
# Usage: tests/setup-debian.sh [build] [test] [boot] [package]   (default: build)
# Idempotent: packages already present are skipped quickly.
set -euo pipefail
groups=("$@"); [ ${#groups[@]} -eq 0 ] && groups=(build)

if [ "$(id -u)" != 0 ]; then
  echo "setup-debian.sh: run as root (it installs packages with apt-get)" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
release=$(. /etc/os-release && echo "${VERSION_ID:-?} ${VERSION_CODENAME:-?}")
# Boost: the code needs >= 1.81. Debian 12's default is 1.74, with 1.81 beside it; Debian 13's
# default is 1.83 (and it has no 1.81).
case ${release% *} in
  12) boost=(libboost1.81-dev libboost-log1.81-dev libboost-test1.81-dev libboost-program-options1.81-dev) ;;
  *)  boost=(libboost-dev libboost-log-dev libboost-test-dev libboost-program-options-dev) ;;
esac
echo "setup-debian.sh: Debian $release"

# The clang runtime (libFuzzer, sanitizers) must be the one of the clang that `clang` is:
# Debian's clang package depends on clang-N; libclang-rt-N-dev is its runtime (14 on 12, 19 on 13).
clang_rt() {
  local n
  n=$(apt-cache depends clang 2>/dev/null | sed -n 's/^ *Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -n 1)
  if [ -z "$n" ]; then
    apt-get update -qq
    n=$(apt-cache depends clang 2>/dev/null | sed -n 's/^ *Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -n 1)
  fi
  [ -n "$n" ] || { echo "setup-debian.sh: apt knows no clang-N behind 'clang'" >&2; exit 1; }
  echo "libclang-rt-$n-dev"
}

# systemd.pc (systemd's unit directory, for CMake) is in systemd on Debian 12 and in
# systemd-dev on Debian 13.
systemd_pc=()
if apt-cache show --no-all-versions systemd-dev >/dev/null 2>&1; then systemd_pc=(systemd-dev); fi

pkgs=()
for g in "${groups[@]}"; do
  case $g in
    build) pkgs+=(g++ cmake make pkg-config "${boost[@]}" "${systemd_pc[@]}"
                  libcryptsetup-dev libpcsclite-dev libkeyutils-dev libssl-dev libp11-kit-dev) ;;
    test)  pkgs+=(systemd cryptsetup-bin keyutils util-linux procps iproute2 python3 pcscd vsmartcard-vpcd
                  vsmartcard-vpicc python3-virtualsmartcard python3-pycryptodome pcsc-tools python3-pyscard
                  clang "$(clang_rt)" gdb softhsm2 opensc p11-kit)
           # the emulated CAC card (libcacard, keys in an NSS database) read by OpenSC and p11-kit
           pkgs+=(libcacard-dev libnss3-tools opensc-pkcs11 p11-kit-modules)
           if apt-cache show --no-all-versions clang-tidy-14 >/dev/null 2>&1; then pkgs+=(clang-tidy-14 clang-format-14); fi ;;
    # systemd-sysv: dracut's shutdown module installs poweroff/reboot/halt from it (a minimal
    # Debian 13 root lacks it). systemd-cryptsetup: a package of its own on Debian 13, which
    # dracut 106's systemd-cryptsetup module installs into the initramfs.
    # QEMU's own CCID reader with libcacard's card; in the initramfs: libccid, p11-kit, OpenSC.
    boot)  pkgs+=(qemu-system-x86 linux-image-amd64 dracut mmdebstrap cpio zstd e2fsprogs xxd openssl systemd-sysv
                  libccid opensc opensc-pkcs11 p11-kit-modules libnss3-tools)
           if apt-cache show --no-all-versions systemd-cryptsetup >/dev/null 2>&1; then pkgs+=(systemd-cryptsetup); fi ;;
    # build-essential: dpkg-checkbuilddeps (dpkg-buildpackage) requires it beside Build-Depends;
    # a minbase Debian 13 root has g++ and make from the build group but not it.
    package) pkgs+=(build-essential debhelper dpkg-dev fakeroot lintian binutils mandoc mmdebstrap git) ;;
    *) echo "setup-debian.sh: unknown group '$g' (build, test, boot, package)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-debian.sh: all packages for '${groups[*]}' are installed"
  exit 0
fi
echo "setup-debian.sh: installing ${missing[*]}"
apt-get -o DPkg::Lock::Timeout=900 update -qq
apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-debian.sh: done"
