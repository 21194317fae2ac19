#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Issue 13 item 12: the fault injection hooks (environment variables CRYPT_AGENT_FAULT_*)
exist only in a build configured with -DCRYPT_AGENT_FAULT_INJECTION=ON (tests/build.sh).

  fault_hooks.py BINARY ON|OFF COMPILE_COMMANDS_JSON

1. The binary holds the hook names exactly when the option is ON (`strings`), and its
   --version says "test build" exactly then.
2. A default configure (as debhelper runs it: build type None, no option given) leaves
   the option OFF: a configure-only run into a scratch directory (seconds, no build).
3. The hook names live in one source, agent/fault.cpp: no other source of ours names a
   "CRYPT_AGENT_FAULT_ variable, and a default configure (option OFF) compiles no
   agent/fault.cpp (its compile_commands.json, written at configure time, lists none), so
   the release cannot name them either, without a second build of the whole agent.  The
   release binary itself is checked with `strings crypt-agent | grep CRYPT_AGENT_FAULT_`
   (must print nothing), as the package job does.
"""
import json, os, subprocess, sys

binary, option, ccjson = sys.argv[1], sys.argv[2].upper(), sys.argv[3]
want = option in ("ON", "1", "TRUE", "YES")
failures = 0


def check(ok, what):
    global failures
    print(("ok: " if ok else "FAIL: ") + what)
    failures += 0 if ok else 1


with open(binary, "rb") as f:
    data = f.read()
check((b"CRYPT_AGENT_FAULT_" in data) == want,
      f"the binary {'holds' if want else 'holds no'} CRYPT_AGENT_FAULT_ hook names (option {option})")
version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
check(("fault injection hooks compiled in" in version) == want, f"--version tells the test build: {version.strip()!r}")

with open(ccjson) as f:
    entries = json.load(f)
src_root = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
FAULT_SOURCE = "agent/fault.cpp"


def our_sources(entries):
    return {os.path.relpath(os.path.realpath(e["file"]), src_root) for e in entries
            if os.path.realpath(e["file"]).startswith(src_root + "/")}


named = []
for rel in sorted(our_sources(entries)):
    if rel.startswith("tests/"):
        continue
    with open(os.path.join(src_root, rel), errors="replace") as f:
        if '"CRYPT_AGENT_FAULT_' in f.read():
            named.append(rel)
check(named == ([FAULT_SOURCE] if want else []),
      f"only {FAULT_SOURCE} names the hooks, and only in the build with the option (named in: {named})")
import shutil, tempfile
scratch = tempfile.mkdtemp(prefix="ca-default-configure-")
try:
    conf = subprocess.run(["cmake", "-S", src_root, "-B", scratch, "-DCMAKE_BUILD_TYPE=None",
                           "-DCRYPT_AGENT_TESTS=OFF", "-DCRYPT_AGENT_BENCH=OFF"], capture_output=True, text=True)
    cache = ""
    if conf.returncode == 0:
        with open(os.path.join(scratch, "CMakeCache.txt")) as f:
            cache = f.read()
    check("CRYPT_AGENT_FAULT_INJECTION:BOOL=OFF" in cache,
          "a default configure (build type None, as debhelper) has CRYPT_AGENT_FAULT_INJECTION OFF"
          + ("" if conf.returncode == 0 else f": configure failed: {conf.stderr[-300:]}"))
    default_sources = set()
    if conf.returncode == 0:
        with open(os.path.join(scratch, "compile_commands.json")) as f:
            default_sources = our_sources(json.load(f))
    check("agent/main.cpp" in default_sources and FAULT_SOURCE not in default_sources,
          f"a default configure compiles the agent without {FAULT_SOURCE}")
finally:
    shutil.rmtree(scratch, ignore_errors=True)
sys.exit(1 if failures else 0)
