#!/bin/bash
# Installs what crypt-agent needs on Debian 12 (bookworm), by group:
#   build  compiler, CMake, Boost 1.81, libcryptsetup, pcsc-lite, keyutils, OpenSSL
#   test   the real components the tests drive: systemd-ask-password, cryptsetup,
#          keyctl, pcscd with the virtual smartcard, clang (fuzzers, LeakSanitizer)
#   boot   QEMU, a Debian kernel, dracut and mmdebstrap for the end-to-end boots
#   package  dpkg-buildpackage with debhelper, lintian, mandoc (man page lint),
#          mmdebstrap for the fresh-root install (the build group has the
#          build dependencies of debian/control)
# Usage: tests/setup-debian.sh [build] [test] [boot] [package]   (default: build)
# Idempotent: packages already present are skipped quickly.
set -euo pipefail
groups=("$@"); [ ${#groups[@]} -eq 0 ] && groups=(build)

pkgs=()
for g in "${groups[@]}"; do
  case $g in
    build) pkgs+=(g++ cmake make pkg-config libboost1.81-dev libboost-log1.81-dev libboost-test1.81-dev
                  libboost-program-options1.81-dev libcryptsetup-dev libpcsclite-dev libkeyutils-dev libssl-dev) ;;
    test)  pkgs+=(systemd cryptsetup-bin keyutils util-linux procps iproute2 python3 pcscd vsmartcard-vpcd
                  vsmartcard-vpicc python3-virtualsmartcard python3-pycryptodome pcsc-tools python3-pyscard
                  clang libclang-rt-14-dev gdb) ;;
    boot)  pkgs+=(qemu-system-x86 linux-image-amd64 dracut mmdebstrap cpio zstd e2fsprogs xxd openssl) ;;
    package) pkgs+=(debhelper dpkg-dev fakeroot lintian binutils mandoc mmdebstrap) ;;
    *) echo "setup-debian.sh: unknown group '$g' (build, test, boot, package)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "setup-debian.sh: run as root (it installs packages with apt-get)" >&2; exit 1
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-debian.sh: all packages for '${groups[*]}' are installed"
  exit 0
fi
echo "setup-debian.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-debian.sh: done"
