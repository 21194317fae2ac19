#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""systemd's own cache in play (issue 3): A is answered and its key is pushed the way
systemd-cryptsetup pushes it; B's first question arrives with AcceptCached=0, as after
systemd's silent try of A's key; the agent answers B with B's own candidate, never A's."""
import subprocess, time
from harness import Env, TestAsker, candidates

env = Env("systemd_cache")
KA, KB = "Per-Volume-Key-A", "Per-Volume-Key-B"
env.put(KA)                                  # plausible for every volume
env.put(KB, "--match", "cryptsetup:/dev/b")  # made for B only (as a card-derived key is)
env.start_agent("--systemd-entry", "keep")

a = env.ask("cryptsetup:/dev/a", accept_cached=True, extra=["--keyname=cryptsetup"])
got_a = env.answer(a)
env.check(got_a == KA, "A is answered with its key")
r = subprocess.run(["keyctl", "pipe", "%user:cryptsetup"], capture_output=True)
env.check(r.returncode == 0 and KA.encode() in r.stdout, "systemd-ask-password pushed A's key into the 'cryptsetup' entry")

b = TestAsker("cryptsetup:/dev/b", accept_cached=False)
r = b.receive()
env.check(r is not None and candidates(r[0]) == [KB], "B's first ask (AcceptCached=0) gets B's own key and not A's")
b.close()
c = TestAsker("cryptsetup:/dev/c", accept_cached=True)
r = c.receive()
env.check(r is not None and candidates(r[0]) == [KA], "C (AcceptCached=1) gets the key plausible for it")
c.close()
env.check(env.stop_agent() == 0, "agent stops cleanly")
env.finish()
