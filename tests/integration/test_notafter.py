#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A far-future NotAfter (issue 13, item 1): `systemd-ask-password --timeout=300y` writes
NotAfter=9467282691653283, past what steady_clock's nanoseconds hold.  Asked before
anything is cached, it must still be answered once `cache put` arrives, like a 60 s one."""
import os
from harness import Env, wait_for, ASK_DIR

env = Env("notafter")
SECRET = "NotAfter-Test-Secret-300y"
env.start_agent()

far = env.ask("cryptsetup:/dev/x", timeout="300y")
near = env.ask("cryptsetup:/dev/near", timeout=60)


def not_after_values():
    out = []
    for n in os.listdir(ASK_DIR):
        if not n.startswith("ask."):
            continue
        try:
            with open(os.path.join(ASK_DIR, n)) as f:
                out += [int(l.split("=", 1)[1]) for l in f if l.startswith("NotAfter=")]
        except OSError:
            pass
    return out


values = wait_for(lambda: (lambda v: v if len(v) == 2 else None)(not_after_values()), what="both questions")
env.check(max(values) > (1 << 63) // 1000, f"the 300y question's NotAfter ({max(values)}) is past 2^63 ns")
env.wait_log("cryptsetup:/dev/x): no untried candidate")
env.wait_log("cryptsetup:/dev/near): no untried candidate")

env.put(SECRET)
env.check(env.answer(near) == SECRET, "the 60 s question is answered after cache put")
env.check(env.answer(far) == SECRET, "the 300y question is answered after cache put")
env.check("deadline reached" not in env.read(), "no question was taken for expired")
env.finish()
