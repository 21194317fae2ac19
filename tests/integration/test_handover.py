#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Handover across switch-root: an initramfs-phase instance answers A and exits; a
root-phase instance started afterwards answers B, C, D from the handed-over cache."""
import os, subprocess
from harness import Env, TestAsker, candidates

env = Env("handover")
SECRET = "Handover-Secret-1"
env.put(SECRET)

initrd = env.start_agent("--phase", "initramfs", tag="initramfs")
a = env.ask("cryptsetup:/dev/vda2", accept_cached=True)
env.check(env.answer(a) == SECRET, "initramfs instance answers the root volume's question")
env.check(env.stop_agent(initrd) == 0, "initramfs instance exits cleanly (as before switch-root)")

# Nothing new is put: the root instance must find the initramfs instance's cache.
root = env.start_agent("--phase", "root", tag="root")
env.check("cache loaded from the kernel keyring" in env.read(), "root instance loads the handed-over cache")
bcd = [env.ask(f"cryptsetup:/dev/vd{x}1", accept_cached=True) for x in "bcd"]
env.check([env.answer(p) for p in bcd] == [SECRET] * 3, "root instance answers B, C, D with no new input")

# What the initramfs instance learnt travels too: A rejected its candidate after handover
# (systemd's retry arrives in the real root): it is never offered to A again.
retry = TestAsker("cryptsetup:/dev/vda2", accept_cached=False)
env.check(retry.receive(0.7) is None, "A's retry in the root phase is not sent what A was sent in the initramfs")
retry.close()
status = env.cli("cache", "status").stdout
env.check("sent to" in status and "rejected by 1" in status, "cache status shows the learning, not the secret")
env.check(env.stop_agent(root) == 0, "root instance stops cleanly")
env.finish()
