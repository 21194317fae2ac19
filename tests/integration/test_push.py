#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""push-systemd = yes: the agent also puts its candidates into systemd's "cryptsetup"
entry and touches the ask directory, which wakes an asker already waiting with
AcceptCached=1 (it re-reads the keyring) — the race where an asker starts before the
cache exists.  Off by default."""
import subprocess, time
from harness import Env

env = Env("push")
SECRET = "Pushed-Secret-8"
env.start_agent("--push-systemd", "yes")

# An asker that reads systemd's keyring entry, waiting before anything is cached.
# (--keyname with --accept-cached: what systemd-cryptsetup's first ask does.)
early = env.ask("vpn:not-ours", accept_cached=True, extra=["--keyname=cryptsetup"], timeout=10)
time.sleep(0.3)
env.put(SECRET)
env.wait_log("pushed 1 candidate(s) into systemd's 'cryptsetup' entry")
got = env.answer(early)
env.check(got == SECRET, "an asker waiting with AcceptCached=1 is woken and takes the pushed entry")
env.check("vpn:not-ours): answered" not in env.read(), "... from the keyring, not from a datagram (its Id is not ours)")
r = subprocess.run(["keyctl", "pipe", "%user:cryptsetup"], capture_output=True)
env.check(r.returncode == 0 and r.stdout == SECRET.encode(), "systemd's entry holds exactly the plausible candidates")
env.check(env.stop_agent() == 0, "agent stops cleanly")

# Off by default: nothing is pushed.
subprocess.run(["keyctl", "purge", "user", "cryptsetup"], capture_output=True)
env.start_agent()
time.sleep(0.3)
r = subprocess.run(["keyctl", "search", "@u", "user", "cryptsetup"], capture_output=True)
env.check(r.returncode != 0, "without push-systemd the agent writes nothing into systemd's entry")
env.check(env.stop_agent() == 0, "agent stops cleanly")
env.finish()
