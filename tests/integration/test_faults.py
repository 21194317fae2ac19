#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Faults: a full receive queue, an asker gone between our checks and our send, a flood of
garbage files, and (fault injected) a kernel without keyrings."""
import errno, os, signal, socket, subprocess, time
from harness import Env, TestAsker, candidates, fault_hooks, wait_for, ASK_DIR, BIN

env = Env("faults")
SECRET = "Faults-Test-Secret-5"
env.put(SECRET)
env.start_agent()

# 1. The asker's socket queue is full: the agent waits (back-off) and delivers once it drains.
full = TestAsker("cryptsetup:/dev/full", name="prep.full")
os.unlink(full.path)                              # no question yet: fill the queue first
filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
sent = 0
while True:
    try:
        filler.sendto(b"x" * 512, full.sock_path)
        sent += 1
    except BlockingIOError:
        break
full2 = TestAsker("cryptsetup:/dev/full", socket_path=full.sock_path, bind=False)
time.sleep(0.3)
drained = 0
while True:
    try:
        d = full.sock.recv(4096)
    except BlockingIOError:
        break
    if d == b"x" * 512:
        drained += 1
    else:
        break
r = full.receive(3)
env.check(sent > 0 and r is not None and candidates(r[0]) == [SECRET],
          f"a full socket queue ({sent} datagrams) delays the answer, which arrives once it drains")
env.check("answered after its socket drained" in env.read(), "the log says it waited for the socket")
full2.close(); full.close(); filler.close()

# 2. The asker is gone between our checks and our send (its socket closed: ECONNREFUSED).
gone = TestAsker("cryptsetup:/dev/gone", name="prep.gone")
os.unlink(gone.path)
gone.sock.close()                                  # nobody reads this socket any more
gone2 = TestAsker("cryptsetup:/dev/gone", socket_path=gone.sock_path, bind=False)
env.wait_log("cryptsetup:/dev/gone): asker gone")
honest = TestAsker("cryptsetup:/dev/after-gone")
r = honest.receive()
env.check(r is not None and candidates(r[0]) == [SECRET], "a vanished asker costs nothing: the next question is answered")
honest.close(); gone2.close()
try:
    os.unlink(gone.sock_path)
except OSError:
    pass

# 3. 10,000 garbage files named ask.*: the honest question beside them is still answered.
for i in range(10000):
    with open(os.path.join(ASK_DIR, f"tmp.g{i}"), "wb") as f:
        f.write(b"\x00garbage" * 4)
    os.rename(os.path.join(ASK_DIR, f"tmp.g{i}"), os.path.join(ASK_DIR, f"ask.g{i}"))
honest = TestAsker("cryptsetup:/dev/after-garbage")
r = honest.receive(20)
env.check(r is not None and candidates(r[0]) == [SECRET], "10,000 garbage files: an honest question is still answered")
honest.close()
for i in range(10000):
    os.unlink(os.path.join(ASK_DIR, f"ask.g{i}"))
env.check(env.agent.poll() is None, "the agent survived the flood")
env.stop_agent()
env.cli("cache", "flush")

# 4. Fault injected: no kernel keyrings (CONFIG_KEYS=n).  The cache falls back to a 0600 file
#    on tmpfs, with a warning, and is handed over from one instance to the next.
if not fault_hooks():
    env.finish(skipped="part 4 needs the fault injection hooks (configure with -DCRYPT_AGENT_FAULT_INJECTION=ON, "
                       "as tests/build.sh does)")
os.environ["CRYPT_AGENT_FAULT_NO_KEYRING"] = "1"
out = env.put("Fallback-Secret-6").stdout
env.check("tmpfs file" in out, "cache put without keyrings stores into the tmpfs file")
path = os.path.join(env.cache_dir, "cache")
st = os.stat(path)
env.check((st.st_mode & 0o777) == 0o600 and (os.stat(env.cache_dir).st_mode & 0o777) == 0o700, "file 0600 in a 0700 directory")
env.start_agent()
q = TestAsker("cryptsetup:/dev/fallback", accept_cached=True)
r = q.receive()
env.check(r is not None and candidates(r[0]) == ["Fallback-Secret-6"], "the agent answers from the fallback file")
q.close()
env.wait_log("the kernel keyring is unavailable")
env.stop_agent()
out = env.cli("finish").stdout
env.check("tmpfs file:         overwritten and removed" in out and not os.path.exists(path), "finish overwrites and removes the file")
del os.environ["CRYPT_AGENT_FAULT_NO_KEYRING"]
env.finish()
