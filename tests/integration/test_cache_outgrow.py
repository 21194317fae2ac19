#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A typed passphrase survives a cache that outgrew its key (issue 13, item 2).

Two cached candidates are sent to ~250 volumes with long Ids: stored as text, what was learnt
no longer fit the 32,767-byte key, every later save failed, and the agent still cleared
systemd's `cryptsetup` entry after taking a typed passphrase from it: the passphrase was then
only in the agent's memory, gone at switch-root.  Now the Ids are fixed-size hashes and the
entry is cleared only once our own copy is stored: after the agent stops, the typed
passphrase is still somewhere the next instance finds it."""
import os, subprocess
from harness import Env, TestAsker, candidates, ASK_DIR

env = Env("cache_outgrow")
A, B, TYPED = "Outgrow-Put-Secret-A", "Outgrow-Put-Secret-B", "Outgrow-Typed-Passphrase-9"
env.put(A)
env.put(B)
env.start_agent()

N = 250
answered = 0
for i in range(N):
    ident = f"cryptsetup:/dev/disk/by-id/nvme-Vendor_Model_SSD_2TB_S6XXNS0T{i:06d}-part{i % 9 + 1}-luks-volume"
    a = TestAsker(ident)
    r = a.receive(5)
    a.close()
    answered += r is not None and sorted(candidates(r[0])) == sorted([A, B])
env.check(answered == N, f"{N} volumes answered with both candidates ({answered})")

# A person types the passphrase for one more volume: systemd-cryptsetup pushes it into its
# keyring entry and touches the directory.
env.secrets.append(TYPED)
subprocess.run(["keyctl", "padd", "user", "cryptsetup", "@u"], input=TYPED, text=True, check=True,
               capture_output=True)
os.utime(ASK_DIR)
env.wait_log("took 1 typed passphrase")
env.stop_agent()
env.check("too large" not in env.read(), "no save failed for size")

kept = subprocess.run(["keyctl", "search", "@u", "user", "cryptsetup"], capture_output=True).returncode == 0
env.start_agent(tag="next")
q = TestAsker("cryptsetup:/dev/disk/by-id/the-next-volume", accept_cached=True)
r = q.receive(5)
q.close()
env.check(r is not None and TYPED in candidates(r[0]),
          f"the next instance offers the typed passphrase (systemd's entry {'kept' if kept else 'cleared'})")
env.stop_agent()
env.finish()
