#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Two volumes asked at once, as systemd-cryptsetup asks (AcceptCached=1, key name
'cryptsetup'): A's asker pushes A's key into systemd's entry as soon as it has it, and
B's asker, which watches that entry as well as its socket, takes A's key from the entry
and never reads the agent's answer (boot.ccid-one-pin-rotate's second boot: data1's key
reached data2's asker first).  A's key fails on B and B asks again with AcceptCached=0:
the agent offers B's key, which B never tried, once more.  A key that the asker did
receive (it is pushed into the entry) and that failed is not offered again, and a key
is given that second chance once only."""
import os, subprocess
from harness import Env, TestAsker, candidates, ASK_DIR

env = Env("entry_race")
KA, KB, KC, KX = "Per-Volume-Key-A", "Per-Volume-Key-B", "Per-Volume-Key-C", "Another-Typed-Key"
env.put(KA, "--match", "cryptsetup:/dev/a")
env.put(KB, "--match", "cryptsetup:/dev/b")
env.put(KC, "--match", "cryptsetup:/dev/c")
env.secrets.append(KX)
env.start_agent()



def push(*values):
    """What systemd-ask-password does with what it got: into the entry, then a touch.
    (A retry makes the agent read the entry first, so no wait is needed here.)"""
    subprocess.run(["keyctl", "padd", "user", "cryptsetup", "@u"], input="\0".join(values), text=True,
                   check=True, capture_output=True)
    os.utime(ASK_DIR)


# B asks first; the agent's answer waits in B's socket...
b = TestAsker("cryptsetup:/dev/b", accept_cached=True)
r = b.receive()
env.check(r is not None and candidates(r[0]) == [KB], "B's first question is answered with B's key")
# ...while A's real systemd-ask-password gets A's key and pushes it into systemd's entry.
a = env.ask("cryptsetup:/dev/a", accept_cached=True, extra=["--keyname=cryptsetup"])
env.check(env.answer(a) == KA, "A is answered with A's key")
# B's asker took A's key from the entry; it failed; B asks again.
b.close()
b = TestAsker("cryptsetup:/dev/b", accept_cached=False)
r = b.receive(5)
env.check(r is not None and candidates(r[0]) == [KB],
          "B's retry after its asker took A's key from systemd's entry gets B's key once more "
          f"(got {'nothing' if r is None else len(candidates(r[0]))})")
env.check("took systemd's keyring entry" in env.read(), "the agent says why it offers B's key again")
b.close()

# Once only: the same story again (another value arrives, B asks again) gets nothing.
push(KX)
b = TestAsker("cryptsetup:/dev/b", accept_cached=False)
r = b.receive(3)
env.check(r is None, "B's key is offered a second time once only")
b.close()

# Control: C received its answer (its asker pushed all of it, beside another volume's
# value) and it failed: C's retry is not offered it again.
c = TestAsker("cryptsetup:/dev/c", accept_cached=True)
r = c.receive()
got = candidates(r[0]) if r is not None else []
env.check(KC in got, "C's first question is answered with C's key")
env.secrets.append(KX + "2")
push(KX + "2", *got)
c.close()
c = TestAsker("cryptsetup:/dev/c", accept_cached=False)
r = c.receive(3)
env.check(r is None or not set(candidates(r[0])) & set(got),
          "what C's asker received and pushed (and failed) is not offered to C again")
c.close()

env.check(env.stop_agent() == 0, "agent stops cleanly")
env.finish()
