#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The cache's lifetime: a hard bound enforced by the kernel and the agent; and finish."""
import os, subprocess, time
from harness import Env, TestAsker, candidates

env = Env("lifetime")

def key_exists(name):
    return subprocess.run(["keyctl", "search", "@u" if env.keyring == "user" else "@s", "user", name],
                          capture_output=True).returncode == 0

# Hard bound: 2 s.  Answered before, not after; the keyring holds nothing after.
env.put("Lifetime-Secret-2", "--ttl", "2")
env.start_agent()
q = TestAsker("cryptsetup:/dev/before", accept_cached=True)
r = q.receive()
env.check(r is not None and candidates(r[0]) == ["Lifetime-Secret-2"], "answered within the lifetime")
q.close()
time.sleep(2.5)
q = TestAsker("cryptsetup:/dev/after", accept_cached=True)
env.check(q.receive(0.7) is None, "not answered after the hard bound")
q.close()
env.check("reached its lifetime" in env.read(), "the agent logs that the cache reached its lifetime")
env.check(not key_exists("crypt-agent:cache"), "the keyring holds no cache key after the bound")
env.check(not os.path.exists(os.path.join(env.cache_dir, "cache")), "no fallback file either")
env.stop_agent()

# The kernel enforces it too, without any agent running.
env.put("Kernel-Bound-Secret", "--ttl", "1")
env.check(key_exists("crypt-agent:cache"), "key present right after cache put")
time.sleep(1.6)
env.check(not key_exists("crypt-agent:cache"), "the kernel's key timeout removed it with no agent running")

# finish: flushes every copy (our key, systemd's entry), a running agent stops answering.
env.put("Finish-Secret-3")
subprocess.run(["keyctl", "padd", "user", "cryptsetup", "@u" if env.keyring == "user" else "@s"],
               input=b"typed-by-someone", check=True, capture_output=True)
env.secrets.append("typed-by-someone")
env.start_agent("--systemd-entry", "keep")
q = TestAsker("cryptsetup:/dev/pre-finish", accept_cached=True)
env.check(q.receive() is not None, "answered before finish")
q.close()
out = env.cli("finish").stdout
env.check("kernel keyring key: removed" in out and "systemd's entry:    removed" in out, "finish reports what it removed")
time.sleep(0.2)
q = TestAsker("cryptsetup:/dev/post-finish", accept_cached=True)
env.check(q.receive(0.7) is None, "after finish the running agent answers nothing")
q.close()
time.sleep(0.2)
env.check(not key_exists("crypt-agent:cache") and not key_exists("cryptsetup"), "no key remains after finish")
env.check(not os.path.exists(os.path.join(env.cache_dir, "cache")), "no cache file remains after finish")
env.check(env.stop_agent() == 0, "agent stops cleanly")
env.check(not key_exists("crypt-agent:cache"), "stopping did not write the cache back")
env.finish()
