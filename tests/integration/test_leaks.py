#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Where a secret must never be: the agent's argv and environment, its logs at debug
level, and its memory after `finish` (read through /proc/PID/mem, as a core dump would
hold it).  Also: no core dumps (RLIMIT_CORE 0), secrets locked in memory (VmLck)."""
import os, re, subprocess, time
from harness import Env, TestAsker, candidates, ASK_DIR

env = Env("leaks")
SECRET = "Leak-Probe-Zq8Wx3Vb"
TYPED = "Typed-Leak-Probe-Kp4"
env.put(SECRET)
agent = env.start_agent()
pid = agent.pid

for i in range(5):
    q = TestAsker(f"cryptsetup:/dev/leak{i}", accept_cached=True)
    r = q.receive()
    env.check(r is not None and SECRET in candidates(r[0]), f"question {i} answered")
    q.close()
# A typed passphrase is harvested too (then flushed by finish).
subprocess.run(["keyctl", "padd", "user", "cryptsetup", "@u" if env.keyring == "user" else "@s"],
               input=TYPED.encode(), check=True, capture_output=True)
env.secrets.append(TYPED)
os.utime(ASK_DIR)  # the private one isolate.sh mounted
env.wait_log("typed passphrase(s)")

def memory_holds(pid, needles):
    # The list first, then the contents, page by page: the agent maps and unmaps one-page
    # secrets while we read, and the kernel merges neighbouring ones into one region, so one
    # page unmapped since the list was read must not hide the rest of its region (the
    # control below then missed a cached secret in about 1 run of 10).  Needles are far
    # shorter than a page; one that straddles two pages is found in the joined pair.
    with open(f"/proc/{pid}/maps") as maps:
        regions = maps.read().splitlines()
    found = set()
    page = 4096
    with open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in regions:
            addr, perms = line.split()[:2]
            if "r" not in perms:
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            prev = b""
            for at in range(lo, hi, page):
                try:
                    mem.seek(at)
                    cur = mem.read(page) or b""
                except (OSError, ValueError, OverflowError):
                    cur = b""
                both = prev + cur
                for n in needles:
                    if n.encode() in both:
                        found.add(n)
                prev = cur
    return found

status = open(f"/proc/{pid}/status").read()
vmlck = int(re.search(r"VmLck:\s+(\d+)", status).group(1))
env.check(vmlck > 0, f"the cached secrets are in locked memory (VmLck {vmlck} kB)")
limits = open(f"/proc/{pid}/limits").read()
env.check(re.search(r"Max core file size\s+0\s+0", limits) is not None, "core dumps are off (RLIMIT_CORE 0)")
cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
environ = open(f"/proc/{pid}/environ", "rb").read()
env.check(SECRET.encode() not in cmdline and TYPED.encode() not in cmdline, "no secret in /proc/PID/cmdline")
env.check(SECRET.encode() not in environ and TYPED.encode() not in environ, "no secret in /proc/PID/environ")

before = memory_holds(pid, [SECRET, TYPED])
env.check(before == {SECRET, TYPED}, "control: the scan does find both secrets while they are cached")

env.cli("finish")
env.wait_log("finish ran")
time.sleep(0.2)
after = memory_holds(pid, [SECRET, TYPED])
env.check(not after, f"after finish no secret remains in the agent's memory (found {len(after)})")
env.check(env.stop_agent() == 0, "agent stops cleanly")
env.finish()
