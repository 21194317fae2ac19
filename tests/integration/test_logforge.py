#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Log lines cannot be forged (issue 13, item 6).  An ask file named with a newline followed
by "<0>..." and an Id holding CR, U+2028, NEL and a bidi override each give one record, at
the agent's own priority, with the bytes escaped as C escapes."""
import os, re
from harness import Env, TestAsker, candidates

env = Env("logforge")
SECRET = "Logforge-Test-Secret-6"
env.put(SECRET)
env.start_agent(journal=True)  # the "<N>" priorities are what a forger would aim at

name = "ask.forged\n<0>EMERGENCY-FORGED-BY-NAME"
ident = "cryptsetup:/dev/a\r<0>CR-FORGED\u2028<0>LS-FORGED\u0085<0>NEL-FORGED\u202eRLO"
a = TestAsker(ident, name=name)
got = a.receive(5)
a.close()
env.check(got is not None and candidates(got[0]) == [SECRET], "the question with the hostile name and Id is answered")
b = TestAsker("cryptsetup:/dev/after")  # a sentinel: everything about the first is logged before it
env.check(b.receive(5) is not None, "a later question is answered")
b.close()
env.stop_agent()

with open(env.agent_log, "rb") as f:
    raw = f.read()
lines = raw.split(b"\n")
if lines and lines[-1] == b"":
    lines.pop()
env.check(all(re.match(rb"^<[2-7]>", l) for l in lines), "every record starts with the agent's own priority")
env.check(not any(l.startswith(b"<0>") or l.startswith(b"<1>") for l in lines), "no emergency or alert record")
env.check(b"\r" not in raw and "\u2028".encode() not in raw and "\u0085".encode() not in raw
          and "\u202e".encode() not in raw, "no raw CR, U+2028, NEL or bidi control in the log")
env.check(b"ask.forged\\n<0>EMERGENCY-FORGED-BY-NAME" in raw, "the file name is logged escaped")
env.check(b"cryptsetup:/dev/a\\r<0>CR-FORGED\\u2028<0>LS-FORGED\\u0085<0>NEL-FORGED\\u202eRLO" in raw,
          "the Id is logged escaped")
env.check(all(l.count(b"FORGED-BY-NAME") <= 1 for l in lines) and
          sum(b"FORGED-BY-NAME" in l for l in lines) >= 1, "the name stays inside its records")
env.finish()
