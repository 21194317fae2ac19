#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs clang-tidy with the tree's .clang-tidy on every source of ours in a build's
# compile_commands.json (CMAKE_EXPORT_COMPILE_COMMANDS is ON in CMakeLists.txt) and fails on
# any warning.  Pinned to clang-tidy 14 (Debian 12's): another version has other checks and
# other findings, so on Debian 13 (clang-tidy 19) this exits 77 unless CLANG_TIDY names one.
#   tests/lint/clang-tidy.sh [BUILD_DIR]   (default: $CRYPT_AGENT_BUILD_DIR, else ./build)
# Environment: CLANG_TIDY (default clang-tidy-14), JOBS (default nproc).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-${CRYPT_AGENT_BUILD_DIR:-$SRC/build}}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy-14}
if ! command -v "$CLANG_TIDY" >/dev/null 2>&1; then
  echo "SKIP: $CLANG_TIDY not found (Debian package clang-tidy-14; tests/setup-debian.sh test installs it on Debian 12)"
  exit 77
fi
[ -f "$BUILD/compile_commands.json" ] || { echo "FAIL: no $BUILD/compile_commands.json (configure first)"; exit 1; }
BUILD=$(cd "$BUILD" && pwd)
# Our sources: under the source tree, not in the build directory (generated files).
mapfile -t files < <(python3 - "$SRC" "$BUILD" <<'PY'
import json, os, sys
src, build = (os.path.realpath(p) for p in sys.argv[1:3])
with open(os.path.join(build, "compile_commands.json")) as f:
    seen = sorted({os.path.realpath(os.path.join(e["directory"], e["file"])) for e in json.load(f)})
for p in seen:
    if p.startswith(src + "/") and not p.startswith(build + "/"):
        print(p)
PY
)
[ ${#files[@]} -gt 0 ] || { echo "FAIL: compile_commands.json lists none of our sources"; exit 1; }
# Headers: ours only (a pattern matching "proto/" anywhere would take in boost/proto/).
src_re=$(printf '%s' "$SRC" | sed 's/[][\.*^$+?(){}|]/\\&/g')
filter="^$src_re/(agent|bench|proto|smartcard|tests)/"
out=$(mktemp); trap 'rm -f "$out"' EXIT
start=$(date +%s)
printf '%s\0' "${files[@]}" | xargs -0 -n 1 -P "${JOBS:-$(nproc)}" \
  "$CLANG_TIDY" -p "$BUILD" --quiet --header-filter="$filter" >"$out" 2>&1 || true
# Findings located in our files only: a path the analyzer follows into Boost may end there
# (boost/asio/execution/any_executor.hpp), and Boost's code is not ours to change.
warnings=$(grep -E "^$src_re/[^:]*:[0-9]+:[0-9]+: (warning|error): " "$out" | sort -u || true)
echo "clang-tidy: ${#files[@]} sources in $(( $(date +%s) - start )) s ($("$CLANG_TIDY" --version | grep -o 'version [0-9.]*'))"
if [ -n "$warnings" ]; then
  grep -v '^[0-9]* warnings\? generated\.$' "$out" || true
  echo "FAIL: $(printf '%s\n' "$warnings" | wc -l) findings"
  exit 1
fi
echo "ok: no findings"
