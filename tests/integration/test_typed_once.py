#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Typed once: a person answers the first volume's question; crypt-agent answers the rest.

The asker is the real systemd-ask-password with --keyname=cryptsetup, which pushes what it
receives into the "cryptsetup" key of root's user keyring exactly as systemd-cryptsetup
does (here the private user namespace's keyring).  The "person" is systemd's own
systemd-reply-password, fed the passphrase the way a console agent would send it.
First asks carry AcceptCached=1 as systemd-cryptsetup's first ask does; retries do not.
"""
import os, subprocess, time
from harness import Env, TestAsker, candidates, wait_for, ASK_DIR

REPLY = "/lib/systemd/systemd-reply-password"
env = Env("typed_once")
if not os.path.exists(REPLY):
    env.close()
    import harness; harness.skip(f"{REPLY} is missing (apt-get install systemd)")

def person_types(passphrase, ident):
    """Wait for the question with this Id and answer it like a console agent."""
    def find():
        for n in os.listdir(ASK_DIR):
            if not n.startswith("ask."):
                continue
            try:
                text = open(os.path.join(ASK_DIR, n)).read()
            except OSError:
                continue
            if f"Id={ident}\n" in text:
                return [l.split("=", 1)[1] for l in text.splitlines() if l.startswith("Socket=")][0]
        return None
    sock = wait_for(find, what=f"question {ident}")
    env.secrets.append(passphrase)
    subprocess.run([REPLY, "1", sock], input=passphrase.encode(), check=True)

def systemd_asks(ident, first=True, timeout=10, keyring=True):
    # --keyname: push what is received into the "cryptsetup" entry, as systemd-cryptsetup does;
    # with --accept-cached it also reads that entry before asking, as systemd-cryptsetup's
    # first try does while the entry lives (150 s).
    extra = ["--keyname=cryptsetup"] if keyring else []
    return env.ask(ident, accept_cached=first, timeout=timeout, extra=extra)

def new_boot():
    """Between scenarios: no agent, no cache, no systemd entry (E's answer was pushed there)."""
    env.stop_agent()
    env.cli("cache", "flush")
    subprocess.run(["keyctl", "purge", "user", "cryptsetup"], capture_output=True)
    env.start_agent()

env.start_agent()

# 1. Typed once: nothing cached; the person answers A; B, C, D open without input.
RIGHT = "Typed-Once-Right-1"
a = systemd_asks("cryptsetup:/dev/vda2")
time.sleep(0.2)
env.check("nothing cached" in env.read(), "with nothing cached the agent leaves A to the person")
person_types(RIGHT, "cryptsetup:/dev/vda2")
env.check(env.answer(a) == RIGHT, "A gets what the person typed")
env.wait_log("typed passphrase(s) from systemd's 'cryptsetup' keyring entry")
env.wait_log("cleared systemd's 'cryptsetup' entry")
r = subprocess.run(["keyctl", "search", "@u", "user", "cryptsetup"], capture_output=True)
env.check(r.returncode != 0, "systemd's entry was taken into the cache and cleared (systemd-entry=clear)")
# B, C, D read no keyring themselves: what answers them is the agent.
bcd = [systemd_asks(f"cryptsetup:/dev/vd{x}1", keyring=False) for x in "bcd"]
env.check([env.answer(p) for p in bcd] == [RIGHT] * 3, "B, C, D are answered by crypt-agent with the typed passphrase")
for x in "bcd":
    env.wait_log(f"cryptsetup:/dev/vd{x}1): answered")
env.check(True, "the agent's log shows it answered B, C, D")
# A later volume whose asker also tries systemd's (now empty) entry first still opens.
e = systemd_asks("cryptsetup:/dev/vde1")
env.check(env.answer(e) == RIGHT, "a later volume opens from the boot-scoped cache")
new_boot()

# 2. One typo: A gets a wrong passphrase first, then the right one.
WRONG, RIGHT2 = "Typo-Wrong-Entry", "Typo-Right-Entry"
a1 = systemd_asks("cryptsetup:/dev/sda2")
person_types(WRONG, "cryptsetup:/dev/sda2")
env.answer(a1)
# systemd-cryptsetup fails to open with it and asks again (AcceptCached=0, same Id).
a2 = systemd_asks("cryptsetup:/dev/sda2", first=False)
time.sleep(0.3)
env.check(a2.poll() is None, "the retry is not answered with the typo by the agent")
person_types(RIGHT2, "cryptsetup:/dev/sda2")
env.check(env.answer(a2) == RIGHT2, "the person's second try reaches A")
got = {}
for x in "bcd":
    q = TestAsker(f"cryptsetup:/dev/sd{x}1", accept_cached=True)
    r = q.receive()
    got[x] = candidates(r[0]) if r else []
    q.close()
env.check(all(got[x] and got[x][0] == RIGHT2 for x in "bcd"), f"B, C, D are offered the right one first: {[len(g) for g in got.values()]} candidates, right first: {[g[:1] == [RIGHT2] for g in got.values()]}, wrong included: {[WRONG in g for g in got.values()]}")
retry = TestAsker("cryptsetup:/dev/sda2", accept_cached=False)
r = retry.receive(0.5)
env.check(r is None or WRONG not in candidates(r[0]), "A is never sent the typo it rejected")
retry.close()
# B rejects what it was sent (as if B had yet another passphrase): never sent again.
b_retry = TestAsker("cryptsetup:/dev/sdb1", accept_cached=False)
env.check(b_retry.receive(0.5) is None, "B's retry is sent nothing it was sent before")
b_retry.close()
new_boot()

# 3. Two volumes with different passphrases, both typed once.
PA, PB = "Volume-A-Pass", "Volume-B-Pass"
a = systemd_asks("cryptsetup:/dev/pa")
person_types(PA, "cryptsetup:/dev/pa")
env.answer(a)
b1 = TestAsker("cryptsetup:/dev/pb", accept_cached=True)
r = b1.receive()
env.check(r is not None and candidates(r[0]) == [PA], "B is first offered A's passphrase")
b1.close()
b2 = systemd_asks("cryptsetup:/dev/pb", first=False)  # PA failed on B: systemd asks again
time.sleep(0.3)
env.check(b2.poll() is None, "B's retry is left to the person")
person_types(PB, "cryptsetup:/dev/pb")
env.check(env.answer(b2) == PB, "the person types B's passphrase")
for ident, want in (("cryptsetup:/dev/pc", PA), ("cryptsetup:/dev/pd", PB)):
    q = TestAsker(ident, accept_cached=True)
    r = q.receive()
    c = candidates(r[0]) if r else []
    env.check(want in c and len(c) <= 2, f"{ident} gets its passphrase within one reply ({len(c)} candidates)")
    q.close()
env.check(env.stop_agent() == 0, "agent stops cleanly")

# 4. Typed before the agent started (a slow start in the initramfs): the push and its touch of
#    the directory came before the watch; the agent looks at systemd's entry when it starts.
env.cli("cache", "flush")
subprocess.run(["keyctl", "purge", "user", "cryptsetup"], capture_output=True)
EARLY = "Typed-Before-Start-7"
a = systemd_asks("cryptsetup:/dev/early-root")
person_types(EARLY, "cryptsetup:/dev/early-root")
env.check(env.answer(a) == EARLY, "the person answers before any agent runs")
env.start_agent()
b = systemd_asks("cryptsetup:/dev/early-data", keyring=False)
env.check(env.answer(b) == EARLY, "an agent started afterwards answers the next volume with it")
env.check(env.stop_agent() == 0, "agent stops cleanly")
env.finish()
