#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile files get no secret and do not stop the agent (issue 2; grows with issue 8).

Runs as real root in a private mount namespace (it needs other uids), with the agent on a
private session keyring.  Every hostile question sits beside an honest one, which must be
answered; every hostile socket is bound by us, so we see anything sent to it.
"""
import os, socket, stat, subprocess, time
from harness import Env, TestAsker, candidates, wait_for, ASK_DIR

env = Env("hostile")
SECRET = "Hostile-Test-Secret-42"
env.put(SECRET)
env.start_agent()

honest_n = 0
def honest_still_served(label):
    global honest_n
    honest_n += 1   # a new Id each time: the same Id asking again would be a retry
    h = TestAsker(f"cryptsetup:/dev/honest{honest_n}")
    r = h.receive()
    h.close()
    env.check(r is not None and candidates(r[0]) == [SECRET], f"{label}: an honest question beside it is answered")

def no_datagram(sock, wait=0.3):
    time.sleep(wait)
    try:
        sock.recv(4096)
        return False
    except BlockingIOError:
        return True

# 1. A symlink named ask.x to a real question: the target is answered once, the link never.
real = TestAsker("cryptsetup:/dev/real", accept_cached=True, name="real-question-not-ask")  # not an ask.* name
os.symlink(real.path, os.path.join(ASK_DIR, "ask.x"))
env.wait_log("ask.x: is a symbolic link, ignoring")
env.check(real.receive(0.3) is None, "symlink ask.x -> a question: nothing sent through the link")
os.unlink(os.path.join(ASK_DIR, "ask.x"))
real.close()
honest_still_served("symlink")

# 2. A FIFO named ask.y: opening it must not block the agent.
os.mkfifo(os.path.join(ASK_DIR, "ask.y"))
env.wait_log("ask.y: is not a regular file, ignoring")
honest_still_served("FIFO")
os.unlink(os.path.join(ASK_DIR, "ask.y"))

# 3. A directory named ask.d
os.mkdir(os.path.join(ASK_DIR, "ask.d"))
env.wait_log("ask.d: ")
honest_still_served("directory named ask.d")
os.rmdir(os.path.join(ASK_DIR, "ask.d"))

# 4. An ask file owned by another uid.
other = TestAsker("cryptsetup:/dev/other-uid", name="prep.otheruid")
os.unlink(other.path)
other2 = TestAsker("cryptsetup:/dev/other-uid", socket_path=other.sock_path, bind=False, name="tmp.owned")
os.chown(other2.path, 1000, 1000)
os.rename(other2.path, os.path.join(ASK_DIR, "ask.otheruid"))
env.wait_log("ask.otheruid: is owned by uid 1000")
env.check(no_datagram(other.sock), "ask file owned by uid 1000: nothing sent")
os.unlink(os.path.join(ASK_DIR, "ask.otheruid"))
other.close()
honest_still_served("foreign owner")

# 5. A world-writable ask file.
ww = TestAsker("cryptsetup:/dev/ww", mode=0o666)
env.wait_log("is writable by group or others")
env.check(no_datagram(ww.sock), "world-writable ask file: nothing sent")
ww.close()

# 6. Socket= outside the ask directory.
outside_path = os.path.join(env.dir, "outside.sock")
out = TestAsker("cryptsetup:/dev/outside", socket_path=outside_path)
env.wait_log("Socket= is outside the ask directory")
env.check(no_datagram(out.sock), "Socket= outside the directory: nothing sent")
out.close()

# 7. Socket= through a symlinked directory inside the ask dir.
os.symlink(env.dir, os.path.join(ASK_DIR, "linkdir"))
via = TestAsker("cryptsetup:/dev/via-link", socket_path=os.path.join(ASK_DIR, "linkdir", "via.sock"))
wait_for(lambda: env.read().count("Socket= is outside the ask directory") >= 2, what="second outside refusal")
env.check(no_datagram(via.sock), "Socket= through a symlinked directory: nothing sent")
via.close()
os.unlink(os.path.join(ASK_DIR, "linkdir"))

# 7b. Socket= is a symlink in the ask dir to a socket outside it (the socket's own name is
# checked without following it: the agent sends by path, so a followed link would leak).
outside2 = os.path.join(env.dir, "outside2.sock")
target = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
target.bind(outside2)
target.setblocking(False)
os.symlink(outside2, os.path.join(ASK_DIR, "sck.link"))
ln = TestAsker("cryptsetup:/dev/sock-link", socket_path=os.path.join(ASK_DIR, "sck.link"), bind=False)
env.wait_log("Socket= is a symbolic link")
env.check(no_datagram(target), "Socket= a symlink to a socket outside: nothing sent")
ln.close()
target.close()
honest_still_served("Socket= symlink")

# 8. Socket= at a regular file.
reg_path = os.path.join(ASK_DIR, "sck.regular")
open(reg_path, "w").close()
reg = TestAsker("cryptsetup:/dev/regular", socket_path=reg_path, bind=False)
env.wait_log("Socket= is not a socket")
env.check(os.path.getsize(reg_path) == 0, "Socket= at a regular file: nothing written")
reg.close()

# 9. Socket= at a stream socket.
st_path = os.path.join(ASK_DIR, "sck.stream")
stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
stream.bind(st_path)
stream.listen(1)
stream.setblocking(False)
sq = TestAsker("cryptsetup:/dev/stream", socket_path=st_path, bind=False)
env.wait_log("cannot send to its socket")
try:
    conn, _ = stream.accept()
    got = conn.recv(100)
except BlockingIOError:
    got = None
env.check(not got, "Socket= at a stream socket: nothing delivered")
sq.close()
stream.close()

# 10. Socket= at a socket owned by a non-root uid.
nr = TestAsker("cryptsetup:/dev/nonroot-sock", name="prep.nonroot")
os.unlink(nr.path)
os.chown(nr.sock_path, 1000, 1000)
nr2 = TestAsker("cryptsetup:/dev/nonroot-sock", socket_path=nr.sock_path, bind=False)
env.wait_log("Socket= is owned by uid 1000")
env.check(no_datagram(nr.sock), "Socket= owned by uid 1000: nothing sent")
nr2.close()
nr.close()

# 11. Socket= longer than sun_path.
lp = TestAsker("cryptsetup:/dev/long", socket_path="/run/systemd/ask-password/" + "s" * 120, bind=False)
env.wait_log("longer than a socket address")
lp.close()

# 12. A file over the size cap, and garbage.
big = os.path.join(ASK_DIR, "tmp.big")
with open(big, "w") as f:
    f.write("[Ask]\nPID=1\nSocket=/x\nMessage=" + "x" * 20000 + "\n")
os.rename(big, os.path.join(ASK_DIR, "ask.big"))
env.wait_log("over the 16384-byte limit")
garbage = os.path.join(ASK_DIR, "tmp.garbage")
with open(garbage, "wb") as f:
    f.write(os.urandom(512))
os.rename(garbage, os.path.join(ASK_DIR, "ask.garbage"))
env.wait_log("ask.garbage: ")
honest_still_served("oversized and garbage files")
os.unlink(os.path.join(ASK_DIR, "ask.big"))
os.unlink(os.path.join(ASK_DIR, "ask.garbage"))

env.check(env.agent.poll() is None, "the agent is still running after all of it")
env.check(env.stop_agent() == 0, "and stops cleanly")
env.finish()
