#!/bin/bash
# SPDX-License-Identifier: MIT
# The tree's C and C++ sources against .clang-format, with one pinned clang-format (14, Debian
# 12's: another version formats some constructs differently, so a check must name its version).
#   tests/lint/format.sh [--check]   list the files clang-format would change; exit 1 if any
#   tests/lint/format.sh --fix       rewrite them in place
# Environment: CLANG_FORMAT (default clang-format-14).  Exit 77 when it is not installed
# (Debian 13 has no clang-format-14: there the check is skipped, by design).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:---check}
case $mode in --check|--fix) ;; *) echo "usage: $0 [--check|--fix]" >&2; exit 2 ;; esac
CLANG_FORMAT=${CLANG_FORMAT:-clang-format-14}
if ! command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
  echo "SKIP: $CLANG_FORMAT not found (Debian package clang-format-14; tests/setup-debian.sh test installs it on Debian 12)"
  exit 77
fi
cd "$SRC"
# Every tracked C/C++ source; outside a git checkout (a source tarball), every one found.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files -- '*.c' '*.h' '*.cpp' '*.hpp')
else
  mapfile -t files < <(find agent bench proto smartcard tests -name '*.[ch]' -o -name '*.[ch]pp' | sort)
fi
if [ "$mode" = --fix ]; then
  printf '%s\0' "${files[@]}" | xargs -0 -n 16 -P "$(nproc)" "$CLANG_FORMAT" -i --style=file
  exit 0
fi
bad=0 lines=0
for f in "${files[@]}"; do
  n=$("$CLANG_FORMAT" --style=file "$f" | diff -- "$f" - | grep -c '^[<>]' || true)
  if [ "$n" -gt 0 ]; then
    echo "$f: $n lines differ from .clang-format"
    bad=$((bad + 1)) lines=$((lines + n))
  fi
done
if [ $bad -gt 0 ]; then
  echo "FAIL: $bad of ${#files[@]} files ($lines diff lines) are not formatted; run tests/lint/format.sh --fix"
  exit 1
fi
echo "ok: ${#files[@]} files match .clang-format ($("$CLANG_FORMAT" --version))"
