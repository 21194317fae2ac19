#!/bin/bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets in a clang build of their own and runs each for a
# bounded time.  Exits 1 on any crash, leak, timeout, out-of-memory or sanitizer
# report (the reproducer is kept, the path is printed), 77 when clang or
# libFuzzer's runtime is missing, 0 otherwise.
#   tests/fuzz/run-fuzzers.sh [SECONDS_PER_TARGET]      (default 30)
# Environment: CRYPT_AGENT_FUZZ_BUILD_DIR (default <source>/build-fuzz),
#              FUZZ_TARGETS="ask_file reply ..." to run a subset.
set -euo pipefail
seconds=${1:-30}
case $seconds in ''|*[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;; esac
src=${CRYPT_AGENT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${CRYPT_AGENT_FUZZ_BUILD_DIR:-$src/build-fuzz}
here=$src/tests/fuzz
read -ra targets <<<"${FUZZ_TARGETS:-ask_file reply cache_codec seed_token glob card_response}"

# Prerequisites: skip (77) with the reason rather than fail.
cc=$(command -v clang || true); cxx=$(command -v clang++ || true)
if [ -z "$cc" ] || [ -z "$cxx" ]; then
  echo "SKIP: clang/clang++ not installed (tests/setup-debian.sh test installs clang)"; exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$probe/p.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>"$probe/err"; then
  echo "SKIP: clang cannot link a libFuzzer target (libclang-rt-14-dev missing?):"; head -3 "$probe/err"; exit 77
fi

echo "== configuring $build (clang, CRYPT_AGENT_FUZZ=ON)"
CC=$cc CXX=$cxx cmake -S "$src" -B "$build" -DCRYPT_AGENT_FUZZ=ON -DCRYPT_AGENT_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log" 2>&1 || {
  cat "$build.configure.log"; echo "FAIL: configuring the clang build"; exit 1; }
echo "== building ${targets[*]/#/fuzz_}"
cmake --build "$build" -j2 --target "${targets[@]/#/fuzz_}" >"$build.build.log" 2>&1 || {
  tail -40 "$build.build.log"; echo "FAIL: building the fuzz targets"; exit 1; }

work=$build/fuzz-runs
rm -rf "$work"
mkdir -p "$work"
# Leaks count as findings; UBSan reports abort (the targets are built with -fno-sanitize-recover).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

status=0
summary=()
for t in "${targets[@]}"; do
  exe=$build/tests/fuzz/fuzz_$t
  corpus=$work/$t/corpus
  mkdir -p "$corpus" "$work/$t/artifacts"
  # A copy: libFuzzer adds what it finds to the corpus directory it is given.
  [ -d "$here/corpus/$t" ] && cp "$here/corpus/$t"/* "$corpus"/
  [ "$t" = ask_file ] && cp "$src"/tests/unit/data/*.ask "$corpus"/
  dict=(); [ -f "$here/$t.dict" ] && dict=(-dict="$here/$t.dict")

  # Every reproducer ever found must stay fixed: run them first, once each.
  if compgen -G "$here/regressions/$t/*" >/dev/null; then
    if ! "$exe" "$here/regressions/$t"/* >"$work/$t/regressions.log" 2>&1; then
      tail -30 "$work/$t/regressions.log"
      echo "FAIL: $t: an input in tests/fuzz/regressions/$t/ fails (again)"
      status=1; summary+=("$t: a regression input FAILS")
    fi
  fi

  log=$work/$t/fuzz.log
  rc=0
  "$exe" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" "$corpus" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  if [ $rc -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
    status=1
    tail -40 "$log"
    echo "FAIL: $t (exit $rc); reproducer(s):"; ls -1 "$work/$t/artifacts/"
    summary+=("$t: FAILED after ${execs:-?} executions, reproducer in $work/$t/artifacts/")
  else
    summary+=("$t: ${execs:-?} executions in ${seconds}s, ${cov:-cov: ?}, corpus $(find "$corpus" -type f | wc -l) inputs")
  fi
done

echo "== fuzz summary (${seconds}s per target)"
printf '  %s\n' "${summary[@]}"
exit $status
