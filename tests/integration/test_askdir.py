#!/usr/bin/env python3
"""The ask directory: created if missing, re-created and re-watched when removed."""
import os, shutil, time
from harness import Env, TestAsker, candidates, wait_for

env = Env("askdir")
SECRET = "Dir-Test-Secret-77"
env.put(SECRET)
private = os.path.join(env.dir, "asks")   # does not exist yet

env.start_agent("--ask-dir", private)
env.check(os.path.isdir(private) and (os.stat(private).st_mode & 0o777) == 0o755, "agent created the missing ask dir 0755")
q = TestAsker("cryptsetup:/dev/a", ask_dir=private)
r = q.receive()
env.check(r is not None and candidates(r[0]) == [SECRET], "question in the created directory answered")
q.close()

# Removed while the agent runs: it re-creates and re-watches.
shutil.rmtree(private)
env.wait_log("was removed or moved")
wait_for(lambda: os.path.isdir(private), what="ask dir re-created")
time.sleep(0.05)
q = TestAsker("cryptsetup:/dev/b", ask_dir=private)
r = q.receive(3)
env.check(r is not None and candidates(r[0]) == [SECRET], "question after the directory was removed and re-created answered")
q.close()

# Removed and re-created by someone else (as a fresh tmpfs mount would be).
shutil.rmtree(private)
os.mkdir(private, 0o755)
time.sleep(0.2)
q = TestAsker("cryptsetup:/dev/c", ask_dir=private)
r = q.receive(3)
env.check(r is not None and candidates(r[0]) == [SECRET], "question after the directory was replaced answered")
q.close()
env.check(env.stop_agent() == 0, "agent stops cleanly")

# A symlink as the ask directory is refused at start with a clear message.
link = os.path.join(env.dir, "link")
os.symlink(private, link)
p = env.start_agent("--ask-dir", link, ready=False)
p.wait(5)
env.check(p.returncode != 0 and "a symlink is refused" in env.read(), "a symlinked ask dir is refused with a reason")
env.finish()
