#!/bin/sh
# SPDX-License-Identifier: MIT
# storm's CSV has one row per run and its SVG is well-formed XML with one
# curve per agent and scenario that answered something.
# usage: check-outputs.sh STORM FLOOR_AGENT
set -u
storm=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$storm" -n 20 --scenario live --scenario backlog --reps 2 --csv "$dir/out.csv" --svg "$dir/out.svg"
rc=$?
[ "$rc" -eq 77 ] && exit 77
[ "$rc" -eq 0 ] || { echo "FAIL: storm exited $rc"; exit 1; }
rows=$(($(wc -l <"$dir/out.csv") - 1))
[ "$rows" -eq 4 ] || { echo "FAIL: $rows CSV rows, expected 4"; exit 1; }
grep -q '^floor,live,20,2,20,0,0,0,0,' "$dir/out.csv" || { echo "FAIL: CSV row for rep 2 missing"; cat "$dir/out.csv"; exit 1; }
python3 - "$dir/out.svg" <<'PY' || exit 1
import sys, xml.dom.minidom
doc = xml.dom.minidom.parse(sys.argv[1])
curves = doc.getElementsByTagName("polyline")
if len(curves) != 2:
    sys.exit(f"FAIL: {len(curves)} curves, expected 2 (live and backlog)")
print("PASS: CSV rows and SVG curves as expected")
PY
