#!/bin/bash
# SPDX-License-Identifier: MIT
# Builds crypt-agent and runs the whole test suite on Debian 12 or 13, as root.
# Installs what the tests need first (tests/setup-debian.sh build test boot package).
#   tests/run-tests.sh                  everything (unit, integration, smartcard, LUKS, bench self-test, QEMU boots)
#   tests/run-tests.sh -LE boot         ctest arguments pass through (here: all but the boots)
# Environment: BUILD_DIR (default ./build), SANITIZE=1 adds a second run under ASan+UBSan+LSan.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$SRC/build}
groups=(build test boot package)
"$SRC/tests/setup-debian.sh" "${groups[@]}"
BUILD_DIR=$BUILD_DIR "$SRC/tests/build.sh"
cd "$BUILD_DIR"
status=0
ctest --output-on-failure --timeout 1200 "$@" || status=$?
if [ "${SANITIZE:-0}" = 1 ]; then
  echo "== the suite again under AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer"
  # The bench harness and the package are not run under the sanitizers: not built either.
  # Nor lint: it reads the sources, which the first pass already checked.
  BUILD_DIR="$BUILD_DIR-sanitize" "$SRC/tests/build.sh" -DCRYPT_AGENT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
    -DCRYPT_AGENT_BENCH=OFF
  (cd "$BUILD_DIR-sanitize" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     ctest --output-on-failure --timeout 1200 -LE 'boot|bench|fuzz|soak|memscan|starve|package|docs|lint' "$@") || status=$?
fi
exit $status
