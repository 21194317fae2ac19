#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Locked memory (issue 13, item 8).  In a user namespace, where RLIMIT_MEMLOCK binds root too.
1. Bounded: forty questions whose sockets are full wait for them to drain without a locked
   copy of their reply each (one reused locked buffer): the agent's VmLck stays small.
2. Warned: with RLIMIT_MEMLOCK lowered to what the agent holds, the next secret cannot be
   locked: one warning line, however many more, and every answer is still sent."""
import os, socket, subprocess, time
from harness import Env, TestAsker, candidates, wait_for

env = Env("memlock")
if os.environ.get("CRYPT_AGENT_USERNS") != "1":
    from harness import skip
    skip("needs a user namespace (real root ignores RLIMIT_MEMLOCK)")
SECRET = "Memlock-Test-Secret-8"
env.put(SECRET)
p = env.start_agent()
JUNK = b"x" * 64


def vmlck_kb():
    with open(f"/proc/{p.pid}/status") as f:
        for line in f:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    return -1


def full_askers(n, tag):
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
    out = []
    for i in range(n):
        prep = TestAsker(f"cryptsetup:/dev/{tag}{i}", name=f"prep.{tag}{i}")
        os.unlink(prep.path)  # no question yet: fill its queue first
        while True:
            try:
                filler.sendto(JUNK, prep.sock_path)
            except BlockingIOError:
                break
        q = TestAsker(f"cryptsetup:/dev/{tag}{i}", socket_path=prep.sock_path, bind=False)
        out.append((prep, q))
    filler.close()
    return out


def sentinel(tag):
    s = TestAsker(f"cryptsetup:/dev/sentinel-{tag}")
    r = s.receive(10)
    s.close()
    return r is not None and SECRET in candidates(r[0])


def drain_and_collect(askers):
    ok = 0
    for prep, q in askers:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                d = prep.sock.recv(4096)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            if d != JUNK:
                ok += SECRET in candidates(d)
                break
        q.close()
        prep.close()
    return ok


N = 40
before = vmlck_kb()
waiting = full_askers(N, "full")
env.check(sentinel("a"), "a question after forty full sockets is answered")
during = vmlck_kb()
env.check(0 <= during <= 64, f"locked memory stays bounded with {N} replies waiting (VmLck {before} -> {during} kB)")
env.check(drain_and_collect(waiting) == N, f"all {N} waiting replies are delivered once their sockets drain")

# 2. No room left to lock anything new.
held = vmlck_kb()
subprocess.run(["prlimit", f"--pid={p.pid}", f"--memlock={held * 1024}:{held * 1024}"], check=True)
env.put(SECRET + "-second")  # the agent loads a new candidate: a secret it cannot lock
answered = 0
for i in range(20):
    a = TestAsker(f"cryptsetup:/dev/limited{i}")
    r = a.receive(5)
    a.close()
    answered += r is not None and len(candidates(r[0])) >= 1
waiting = full_askers(10, "limfull")
env.check(sentinel("b"), "answered under the lowered limit")
env.check(answered == 20 and drain_and_collect(waiting) == 10, "every answer is still sent under the lowered limit")
warnings = [l for l in env.read().splitlines() if "cannot lock memory" in l]
env.check(len(warnings) == 1, f"one warning about memory that cannot be locked (got {len(warnings)})")
env.stop_agent()
env.finish()
