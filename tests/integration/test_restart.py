#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SIGKILL of the agent mid-storm: the agent started after it answers every question still
pending, and no question gets a second reply.

The askers are real datagram sockets written the way systemd 252 asks (harness.TestAsker),
read by this test as they arrive so every datagram is counted per socket.  systemd-ask-password
removes its question right after reading its reply, which leaves almost no window in which a
restarted agent could answer it again; these askers keep their question HOLD seconds after
their first reply, so every question answered shortly before the kill is still there when the
next agent starts.  Real systemd-ask-password askers run in the same storm and must each get
their answer.  A second part injects the kill at a chosen step (fault injection, compiled into
test builds): just before a reply's sendto, and just after it with the reply still queued.
"""
import os, re, selectors, signal, time
from harness import Env, TestAsker, candidates, wait_for

HOLD = 0.4     # s an asker keeps its question after its first reply (the agent's grace is 1 s)
N = 500        # counting askers in the storm
REAL = 25      # real systemd-ask-password askers among them
KILL_AFTER = 150

env = Env("restart")
SECRET = "Restart-Test-Secret-8"
env.put(SECRET)


class CountingAsker(TestAsker):
    def __init__(self, ident, **kw):
        super().__init__(ident, accept_cached=True, **kw)
        self.got = []            # (monotonic time, payload) of every datagram
        self.removed = False

    def drain(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            self.got.append((time.monotonic(), data))

    def remove_question(self):
        if not self.removed:
            self.removed = True
            os.unlink(self.path)


# ---- 1. a storm, the agent SIGKILLed in the middle, a new agent started at once ----------
first = env.start_agent()
sel = selectors.DefaultSelector()
askers, real = [], []
killed_at = None
second = None


restart_listed = False   # the restarted agent has met a question the killed one answered
last_look = 0.0


def held_for_restart(a, now):
    # A question the killed agent answered stays until the restarted agent has met one (its
    # askers wait as long as their volumes take to open): a restart slower than HOLD (a
    # sanitizer build on a busy machine) would otherwise find every one of them gone.
    global restart_listed, last_look
    if killed_at is None or restart_listed or a.got[0][0] > killed_at or now - killed_at > 10:
        return False
    if now - last_look >= 0.05:
        last_look = now
        restart_listed = "already answered by the agent that ran before this one" in env.read()
    return not restart_listed


def pump():
    for key, _ in sel.select(0):
        key.data.drain()
    now = time.monotonic()
    for a in askers:
        if a.got and not a.removed and now - a.got[0][0] >= HOLD and not held_for_restart(a, now):
            a.remove_question()


def answered():
    return sum(1 for a in askers if a.got)


for i in range(N):
    a = CountingAsker(f"cryptsetup:/dev/storm-{i}")
    sel.register(a.sock, selectors.EVENT_READ, a)
    askers.append(a)
    if i % (N // REAL) == 0:
        real.append(env.ask(f"cryptsetup:/dev/real-{i}", timeout=30, accept_cached=True))
    pump()
    if killed_at is None and answered() >= KILL_AFTER:
        first.send_signal(signal.SIGKILL)
        first.wait()
        pump()                       # every reply of the killed agent is read before the mark
        killed_at = time.monotonic()
        pending_at_kill = sum(1 for a in askers if a.got and not a.removed)
        second = env.start_agent(tag="restarted", ready=False)   # the storm goes on meanwhile

env.check(killed_at is not None, f"the agent was SIGKILLed mid-storm (after {KILL_AFTER} of {N} answers)")
env.check(pending_at_kill > 0, f"{pending_at_kill} answered question(s) were still asked when it died")
wait_for(lambda: (pump(), all(a.got for a in askers))[1], timeout=30, what="every question answered")
end = time.monotonic() + 2.0     # longer than the grace: a late second reply would show
while time.monotonic() < end:
    pump()
    time.sleep(0.01)

counts = [len(a.got) for a in askers]
twice = [a for a in askers if len(a.got) > 1]
env.check(all(c >= 1 for c in counts), f"none of {N} questions unanswered")
env.check(not twice, f"no question answered twice ({len(twice)} were"
          + (f", e.g. {os.path.basename(twice[0].path)}: {len(twice[0].got)} datagrams" if twice else "") + ")")
env.check(all(candidates(d) == [SECRET] for a in askers for _, d in a.got), "every reply carries the cached secret")
by_first = sum(1 for a in askers if a.got[0][0] <= killed_at)
env.check(0 < by_first < N, f"both agents answered ({by_first} before the kill, {N - by_first} after)")
got_real = [env.answer(p, timeout=20) for p in real]
env.check(all(r == SECRET for r in got_real), f"all {len(real)} real systemd-ask-password askers got the passphrase")
log = env.read()
skipped = [l for l in log.splitlines() if "already answered by the agent that ran before this one" in l]
env.check(len(skipped) > 0, f"the restarted agent's log names the {len(skipped)} question(s) it did not answer again")
names_before = {os.path.basename(a.path) for a in askers if a.got[0][0] <= killed_at}
env.check(all(re.search(r"(ask\.\S+) \(", l).group(1) in names_before for l in skipped),
          "every question it skipped had been answered by the killed agent")
env.check("had already been answered" in log, "the log sums up what it skipped")
state = os.path.join(env.cache_dir, "answered")
env.check(os.path.isfile(state), f"answered questions are recorded in {state}")
if os.path.isfile(state):
    st = os.stat(state)
    with open(state, "rb") as f:
        data = f.read()
    env.check((st.st_mode & 0o777) == 0o600 and st.st_size % 64 == 0 and st.st_size <= 64 * (N + REAL + 1),
              f"the record of answered questions is 0600 and bounded ({st.st_size} bytes)")
    env.check(SECRET.encode() not in data, "no secret in the record of answered questions")
env.check(env.stop_agent(second) == 0, "the restarted agent stops cleanly")
for a in askers:
    sel.unregister(a.sock)
    a.close()

# ---- 2. the kill at a chosen step (fault injection) ----------------------------------------
def fault_agent(spec):
    os.environ["CRYPT_AGENT_FAULT_SIGKILL_AT_SEND"] = spec
    try:
        return env.start_agent(tag=f"fault-{spec.replace(':', '-')}")
    finally:
        del os.environ["CRYPT_AGENT_FAULT_SIGKILL_AT_SEND"]


def died(p):
    try:
        p.wait(3)
    except Exception:
        return False
    return p.returncode == -signal.SIGKILL


# 2a. Killed after recording its third reply and before sending it.
p = fault_agent("before:3")
qs = [TestAsker(f"cryptsetup:/dev/fault-{i}", accept_cached=True) for i in range(3)]
if not died(p) or "fault injection: SIGKILL before" not in env.read():
    env.finish(skipped="part 2: the agent did not take the CRYPT_AGENT_FAULT_SIGKILL_AT_SEND fault "
                       "(built with CRYPT_AGENT_FAULT_INJECTION=OFF, or an agent without that fault point)")
# Which question is third depends on how the agent met them: one by one through inotify, or
# all at once in the listing of its first wake (directory order, newest first on tmpfs).
got = [q.receive(0.5) for q in qs]
env.check(sum(r is not None for r in got) == 2, "two questions were answered before the kill")
unanswered = [q for q, r in zip(qs, got) if r is None]
env.check(len(unanswered) == 1, "the third question got nothing: the agent died before its sendto")
third = unanswered[0] if unanswered else qs[2]
t0 = time.monotonic()
p = env.start_agent(tag="after-before")
env.wait_log("no reply waits on its socket; answering it in 1 s")
r = third.receive(4)
env.check(r is not None and candidates(r[0]) == [SECRET] and time.monotonic() - t0 >= 0.9,
          "the restarted agent answers the question whose reply was recorded but never sent, after its grace second")
env.check(all(q.receive(1.2) is None for q in qs), "and no question of the three gets a second reply")
env.check(env.read().count("already answered by the agent that ran before this one") == 2,
          "the log names the two it did not answer again")
env.stop_agent(p)
for q in qs:
    q.close()

# 2b. Killed just after its second sendto: the reply is still queued on the socket.
p = fault_agent("after:2")
q1 = TestAsker("cryptsetup:/dev/fault-a", accept_cached=True)
env.check(q1.receive(3) is not None, "first question answered")
q2 = TestAsker("cryptsetup:/dev/fault-b", accept_cached=True)
env.check(died(p), "the agent was killed right after its second sendto")
p = env.start_agent(tag="after-after")
env.wait_log("a reply waits on its socket, not answering it twice")
time.sleep(1.3)
replies = []
while (r := q2.receive(0.2)) is not None:
    replies.append(r)
env.check(len(replies) == 1 and candidates(replies[0][0]) == [SECRET], f"the queued reply is the only one ({len(replies)})")
env.check(q1.receive(0.2) is None, "the first question gets no second reply either")
env.check(env.stop_agent(p) == 0, "agent stops cleanly")
q1.close(); q2.close()
env.finish()
