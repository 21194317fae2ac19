#!/bin/bash
# Configures and builds crypt-agent into BUILD_DIR (default ./build), warnings as errors.
# Extra CMake arguments pass through: tests/build.sh -DCRYPT_AGENT_SANITIZE=ON
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$SRC/build}
cmake -S "$SRC" -B "$BUILD_DIR" -DCRYPT_AGENT_WERROR=ON "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
