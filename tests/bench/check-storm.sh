#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs storm and checks its exit code and the counts on its last line
# ("storm-total ..."), so a test can say exactly what the harness must report.
# usage: check-storm.sh EXPECTED_RC 'key=value ...' STORM [storm args...]
# Exit 77 (skipped) when storm says it cannot run here (not root, no
# namespaces, agent binary absent), after printing why.
set -u
expected_rc=$1
expected=$2
shift 2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$@" >"$out" 2>&1
rc=$?
cat "$out"
if [ "$rc" -eq 77 ]; then
    echo "SKIP: storm cannot run here (see above)"
    exit 77
fi
total=$(grep '^storm-total ' "$out" | tail -n 1)
if [ -z "$total" ]; then
    echo "FAIL: no storm-total line"
    exit 1
fi
status=0
if [ "$rc" -ne "$expected_rc" ]; then
    echo "FAIL: exit code $rc, expected $expected_rc"
    status=1
fi
for kv in $expected; do
    case " $total " in
        *" $kv "*) ;;
        *) echo "FAIL: expected $kv in: $total"; status=1 ;;
    esac
done
[ "$status" -eq 0 ] && echo "PASS: $total"
exit "$status"
