#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The ask directory's mode is re-checked while the agent runs (issue 13, item 7).
chmod 0777 while running: one log line, a question asked meanwhile is not answered;
chmod back: the agent says so, and the waiting question is answered."""
import os, time
from harness import Env, TestAsker, candidates, ASK_DIR

env = Env("askdir_recheck")
SECRET = "Askdir-Recheck-Secret-7"
env.put(SECRET)
env.start_agent()

first = TestAsker("cryptsetup:/dev/before")
r = first.receive(5)
first.close()
env.check(r is not None and candidates(r[0]) == [SECRET], "answered while the directory is safe")

os.chmod(ASK_DIR, 0o777)
env.wait_log("not answering anything there")
q = TestAsker("cryptsetup:/dev/during")
again = TestAsker("cryptsetup:/dev/during2")  # more wakes while unsafe: still one log line
env.check(q.receive(0.5) is None and again.receive(0.1) is None,
          "a question asked while the directory is 0777 is not answered")
env.check(env.read().count("not answering anything there") == 1, "one log line while it is unsafe")

os.chmod(ASK_DIR, 0o755)
env.wait_log("is safe again")
r = q.receive(5)
r2 = again.receive(5)
env.check(r is not None and candidates(r[0]) == [SECRET] and r2 is not None,
          "the questions asked meanwhile are answered once it is safe again")
q.close(); again.close()
env.stop_agent()
env.finish()
