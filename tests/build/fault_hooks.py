#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Issue 13 item 12: the fault injection hooks (environment variables CRYPT_AGENT_FAULT_*)
exist only in a build configured with -DCRYPT_AGENT_FAULT_INJECTION=ON (tests/build.sh).

  fault_hooks.py BINARY ON|OFF COMPILE_COMMANDS_JSON

1. The binary holds the hook names exactly when the option is ON (`strings`), and its
   --version says "test build" exactly then.
2. A default configure (as debhelper runs it: build type None, no option given) leaves
   the option OFF: a configure-only run into a scratch directory (seconds, no build).
3. What a default configure (option OFF) would compile: every source of ours that names a
   hook is preprocessed with its own compile command minus the option's definition; no
   "CRYPT_AGENT_FAULT_ string may survive.  This checks the release without a second build
   (a default-option build of the whole agent costs minutes on CI's two cores); the
   release binary itself is checked with `strings crypt-agent | grep CRYPT_AGENT_FAULT_`
   (must print nothing), as the package job does.
"""
import json, os, re, shlex, subprocess, sys

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
seen = 0
for e in entries:
    path = os.path.realpath(e["file"])
    if not path.startswith(src_root + "/") or "/tests/" in path:
        continue
    with open(path, errors="replace") as f:
        if '"CRYPT_AGENT_FAULT_' not in f.read():
            continue
    seen += 1
    args = e["arguments"] if "arguments" in e else shlex.split(e["command"])
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":
            skip = True
            continue
        if a == "-c" or a.startswith("-DCRYPT_AGENT_FAULT_INJECTION"):
            continue
        if a.endswith("ccache"):
            continue
        out.append(a)
    pre = subprocess.run(out + ["-E", "-P", "-o", "-"], cwd=e["directory"], capture_output=True, text=True)
    if pre.returncode != 0:
        check(False, f"preprocessing {path}: {pre.stderr[-500:]}")
        continue
    hits = re.findall(r'"CRYPT_AGENT_FAULT_\w*', pre.stdout)
    check(not hits, f"{os.path.relpath(path, src_root)} without the option names no hook ({hits[:3]})")
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
finally:
    shutil.rmtree(scratch, ignore_errors=True)
check(seen >= 3, f"found the sources with hooks ({seen}: agent/answer/send.cpp, agent/cache/keyring.cpp, agent/luks/fault.cpp)")
sys.exit(1 if failures else 0)
