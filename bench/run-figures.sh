#!/bin/sh
# SPDX-License-Identifier: MIT
# Produces the figures in bench/README.md: every agent found here, alternating,
# N = 1, 100, 1000, 10000, live + backlog + startup, three repetitions,
# medians.  Needs root (storm makes its own mount namespace and keyring).
# usage: bench/run-figures.sh BUILD_DIR [OUT_DIR]
# FIGURES_BUILD_NOTE (optional) is written into the header, e.g. which commit
# the build was made from when it is not this tree.
set -eu
build=${1:?usage: run-figures.sh BUILD_DIR [OUT_DIR]}
out=${2:-$(dirname "$0")/results}
mkdir -p "$out"
{
    echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -r), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    src=$(cd "$(dirname "$0")/.." && pwd)
    echo "# tree: HEAD $(git -C "$src" rev-parse --short HEAD); last agent/ commit $(git -C "$src" log -1 --format=%h -- agent proto); uncommitted files under agent/ proto/: $(git -C "$src" status --short -- agent proto | wc -l)"
    echo "# crypt-agent binary: $(stat -c '%y' "$build/agent/crypt-agent" 2>/dev/null | cut -c1-19)${FIGURES_BUILD_NOTE:+, $FIGURES_BUILD_NOTE}"
} >"$out/storm.txt"
"$build/bench/storm" --compare -n 1,100,1000,10000 --scenario all --reps 3 \
    --csv "$out/storm.csv" --svg "$out/storm.svg" >>"$out/storm.txt" 2>"$out/storm.log" || true
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/storm.txt"
# Reaction time: the same 1000 questions one at a time (-c 1), so latency is
# the agent's wake-to-reply time without any queue in front of it.
"$build/bench/storm" --compare -n 1000 -c 1 --scenario live --reps 3 \
    --csv "$out/storm-c1.csv" >"$out/storm-c1.txt" 2>>"$out/storm.log" || true
"$build/bench/parse-bench" >"$out/parse-bench.txt"
cat "$out/storm.txt" "$out/storm-c1.txt" "$out/parse-bench.txt"
