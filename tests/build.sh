#!/bin/bash
# SPDX-License-Identifier: MIT
# Configures and builds crypt-agent into BUILD_DIR (default ./build), warnings as errors.
# Extra CMake arguments pass through: tests/build.sh -DCRYPT_AGENT_SANITIZE=ON
# The test build carries the fault injection hooks (off in a default configure, so in any
# package); -DCRYPT_AGENT_FAULT_INJECTION=OFF here builds what a distribution ships.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$SRC/build}
launcher=()
# ccache, where installed, lets several checkouts of the tree share object files.
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$SRC")}
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$SRC" -B "$BUILD_DIR" -DCRYPT_AGENT_WERROR=ON -DCRYPT_AGENT_FAULT_INJECTION=ON "${launcher[@]}" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
