#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The cache directory is checked as the ask directory is (issue 13, item 4).

Real root (files of other uids), the agent on a private session keyring.
1. A FIFO named `cache`: the agent starts, does not block, and stops promptly on SIGTERM;
   `cache flush` does not block either.
2. A `finished` planted by another uid, a symlink or a FIFO by that name: not taken for `finish`.
3. A cache directory owned by another uid, writable by others, or a symlink: refused at start."""
import os, subprocess
from harness import Env, TestAsker, candidates, wait_for

env = Env("cachedir")
SECRET = "Cachedir-Test-Secret-4"


def served(label, ident):
    a = TestAsker(ident)
    r = a.receive(5)
    a.close()
    env.check(r is not None and candidates(r[0]) == [SECRET], label)


# 1. A FIFO where the store expects its file; nothing in the keyring, so the file is read.
os.makedirs(env.cache_dir, mode=0o700)
os.mkfifo(os.path.join(env.cache_dir, "cache"), 0o600)
p = env.start_agent(ready=False)
try:
    wait_for(lambda: "watching" in env.read() or p.poll() is not None, timeout=10, what="agent ready")
    ready = p.poll() is None
except AssertionError:
    ready = False
env.check(ready, "a FIFO named cache does not block the agent's start")
env.check("is not a regular 0600 file" in env.read() or not ready, "the FIFO named cache is reported")
try:
    env.stop_agent(p)
    env.check(True, "SIGTERM stops it promptly")
except AssertionError as e:
    env.check(False, f"SIGTERM stops it promptly ({e})")
try:
    r = env.cli("cache", "flush", check=False)
    env.check(r.returncode == 0, "cache flush with a FIFO named cache completes")
except subprocess.TimeoutExpired:
    env.check(False, "cache flush with a FIFO named cache completes (it blocked)")
try:
    os.unlink(os.path.join(env.cache_dir, "cache"))
except FileNotFoundError:
    pass

# 2. A `finished` that `finish` did not make.
env.put(SECRET)
fin = os.path.join(env.cache_dir, "finished")
with open(fin, "w"):
    pass
os.chown(fin, 1000, 1000)
env.start_agent()
served("a finished marker owned by uid 1000 is not taken for finish", "cryptsetup:/dev/planted")
env.stop_agent()
os.unlink(fin)
os.symlink("/etc/hostname", fin)
env.start_agent()
served("a symlink named finished is not taken for finish", "cryptsetup:/dev/symlinked")
env.stop_agent()
os.unlink(fin)
os.mkfifo(fin, 0o600)
env.start_agent()
served("a FIFO named finished is not taken for finish (and does not block)", "cryptsetup:/dev/fifo-finished")
env.stop_agent()
os.unlink(fin)
env.cli("finish")
env.start_agent()
a = TestAsker("cryptsetup:/dev/after-finish")
env.check(a.receive(0.5) is None, "the real finish marker still stops answers")
a.close()
env.stop_agent()


# 3. Directories that are not the agent's alone.
def refused(label, path):
    env.cache_dir = path
    p = env.start_agent(ready=False)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        pass
    out = env.read()
    env.check(p.poll() not in (None, 0) and "the cache directory" in out and "watching" not in out, label)
    env.stop_agent(p)


other = os.path.join(env.dir, "other-owned")
os.makedirs(other, mode=0o700)
os.chown(other, 1000, 1000)
refused("a cache directory owned by uid 1000 is refused", other)
shared = os.path.join(env.dir, "shared")
os.makedirs(shared)
os.chmod(shared, 0o777)
refused("a cache directory writable by others is refused", shared)
good = os.path.join(env.dir, "good")
os.makedirs(good, mode=0o700)
link = os.path.join(env.dir, "link")
os.symlink(good, link)
refused("a cache directory that is a symlink is refused", link)
env.finish()
