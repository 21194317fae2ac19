#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Soak: request storms with random asker kills, for a given time, against crypt-agent.

  bench/soak/soak.py [--seconds 600] [--batch 50] [--kill-fraction 0.2] [--bin PATH]

Runs itself in a private user and mount namespace (its own /run/systemd/ask-password and
its own root user keyring; the machine's are never touched).  Each round: a batch of the
real systemd-ask-password asks with cryptsetup: Ids, a random fraction of them is SIGKILLed
(their files stay behind, as after a crash), the rest must be answered with the cached secret.
The agent's open file descriptors and RSS are sampled every round; the first and last values
are printed, and the run fails if either grows (fds by more than 4, RSS by more than 25 %
after the first minute's warm-up) or if any surviving asker went unanswered.
"""
import argparse, os, random, signal, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--seconds", type=float, default=600)
ap.add_argument("--batch", type=int, default=50)
ap.add_argument("--kill-fraction", type=float, default=0.2)
ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "agent", "crypt-agent"))
args = ap.parse_args()

if os.environ.get("SOAK_ISOLATED") != "1":
    os.environ["SOAK_ISOLATED"] = "1"
    os.execvp("unshare", ["unshare", "-Urm", "--propagation", "private", sys.executable, *sys.argv])
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run/systemd"], check=True)
ASK = "/run/systemd/ask-password"
os.makedirs(ASK)
# A session keyring that links the namespace's own user keyring (KeyringMode=shared).
subprocess.run(["keyctl", "new_session"], capture_output=True)
subprocess.run(["keyctl", "link", "@u", "@s"], capture_output=True)

work = tempfile.mkdtemp(prefix="crypt-agent-soak-")
SECRET = "Soak-Secret-" + os.urandom(6).hex()
cache = os.path.join(work, "cache")
subprocess.run([args.bin, "cache", "put", "--cache-dir", cache, "--ttl", str(int(args.seconds) + 600)],
               input=(SECRET + "\n").encode(), check=True, capture_output=True)
log = open(os.path.join(work, "agent.log"), "w")
agent = subprocess.Popen([args.bin, "serve", "--cache-dir", cache, "--log-level", "warning"], stdout=log, stderr=log)
time.sleep(0.3)

def sample():
    fds = len(os.listdir(f"/proc/{agent.pid}/fd"))
    rss = int([l for l in open(f"/proc/{agent.pid}/status") if l.startswith("VmRSS")][0].split()[1])
    return fds, rss

first = sample()
warm = None
rounds = answered = killed = unanswered = 0
start = time.monotonic()
samples = []
try:
    while time.monotonic() - start < args.seconds:
        rounds += 1
        procs = [subprocess.Popen(["systemd-ask-password", "--no-tty", "--accept-cached", "--timeout=20",
                                   f"--id=cryptsetup:/dev/soak{rounds}-{i}", "Passphrase:"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                 for i in range(args.batch)]
        victims = set(random.sample(range(args.batch), int(args.batch * args.kill_fraction)))
        for i in victims:
            procs[i].send_signal(signal.SIGKILL)
        for i, p in enumerate(procs):
            out, _ = p.communicate(timeout=30)
            if i in victims:
                killed += 1
            elif p.returncode == 0 and out.decode().rstrip("\n") == SECRET:
                answered += 1
            else:
                unanswered += 1
        # What killed askers leave behind: clean it up, as a reboot would; the agent must cope.
        for n in os.listdir(ASK):
            try:
                os.unlink(os.path.join(ASK, n))
            except OSError:
                pass
        s = sample()
        samples.append(s)
        if warm is None and time.monotonic() - start > min(60, args.seconds / 4):
            warm = s
finally:
    last = sample() if agent.poll() is None else (None, None)
    agent.send_signal(signal.SIGTERM)
    agent.wait(10)
    log.close()

leaked = SECRET in open(os.path.join(work, "agent.log")).read()
warm = warm or first
print(f"soak: {time.monotonic() - start:.0f} s, {rounds} rounds of {args.batch}: "
      f"{answered} answered, {killed} askers SIGKILLed, {unanswered} unanswered")
print(f"agent fds: first {first[0]}, after warm-up {warm[0]}, last {last[0]}, max {max(s[0] for s in samples)}")
print(f"agent RSS KiB: first {first[1]}, after warm-up {warm[1]}, last {last[1]}, max {max(s[1] for s in samples)}")
ok = (unanswered == 0 and not leaked and last[0] is not None and last[0] <= warm[0] + 4
      and last[1] <= warm[1] * 1.25)
print("soak: PASS" if ok else f"soak: FAIL (unanswered {unanswered}, secret in log {leaked})")
sys.exit(0 if ok else 1)
