#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The shutdown summary counts every question, whichever way it was left to other agents
(issue 15: only 7 of the 15 places that left a question to others counted it, so the agent's
own PIN question and a question whose NotAfter passed while it waited were missing)."""
import subprocess, time
from harness import Env, TestAsker, candidates, wait_for

env = Env("summary")
SECRET = "Summary-Secret-4"
env.start_agent()  # nothing cached yet

# Not ours: an Id the agent is not configured to answer.
other = TestAsker("vpn:office")
env.wait_log("vpn:office): Id not configured to be answered")
# The agent's own question (a card's PIN): for a person, never answered from the cache.
own = TestAsker("crypt-agent:pin:summary")
env.wait_log("the agent's own question, for a person")
# Ours, with nothing to answer it, until its NotAfter passes (1 s from now, CLOCK_MONOTONIC).
late = TestAsker("cryptsetup:/dev/late", not_after=int(time.monotonic() * 1e6) + 1_000_000)
wait_for(lambda: "/dev/late): deadline reached without an answer from us" in env.read()
         or "/dev/late): its deadline (NotAfter) has passed" in env.read(), timeout=10, what="the deadline")
# An asker that is gone (its PID has exited).
p = subprocess.Popen(["true"])
p.wait()
dead = TestAsker("cryptsetup:/dev/dead", pid=p.pid)
env.wait_log(f"asker PID {p.pid} is gone")
# And one answered.
env.put(SECRET)
ok = TestAsker("cryptsetup:/dev/ok", accept_cached=True)
r = ok.receive(10)
env.check(r is not None and candidates(r[0]) == [SECRET], "a question with a cached candidate is answered")

env.check(env.stop_agent() == 0, "the agent stops on SIGTERM")
line = next((l for l in env.read().splitlines() if "stopping: answered" in l), "")
print(f"summary: {line}")
env.check("answered 1 question(s), left 3 to other agents; 1 asker(s) went away unanswered" in line,
          "the summary counts the other Id, the agent's own question and the passed deadline as left to others, "
          "and the gone asker")
for a in (other, own, late, dead, ok):
    a.close()
env.finish()
