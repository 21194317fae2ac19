#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""crypt-agent serve against the real systemd-ask-password (issue 2's acceptance)."""
import os, signal, socket, subprocess, time
from harness import Env, TestAsker, candidates, wait_for, ASK_DIR

env = Env("serve")
SECRET = "s3rv3-Test-Passphrase"

# The agent started after the questions were written answers them (as a .path unit does).
early = [env.ask(f"cryptsetup:/dev/early{i}") for i in range(3)]
wait_for(lambda: len([n for n in os.listdir(ASK_DIR) if n.startswith("ask.")]) >= 3, what="3 ask files")
env.put(SECRET)
env.start_agent()
env.check(all(env.answer(p) == SECRET for p in early), "agent started after 3 questions answers all three")

# 50 questions at once, all answered with the cached secret.
storm = [env.ask(f"cryptsetup:/dev/disk{i}", accept_cached=(i % 2 == 0)) for i in range(50)]
answers = [env.answer(p) for p in storm]
env.check(answers.count(SECRET) == 50, f"50 questions at once: {answers.count(SECRET)} answered with the secret")

# A question with another Id is left alone (it times out).
other = env.ask("vpn:office", timeout=2)
env.check(env.answer(other) is None, "a question with Id vpn:office is not answered")
env.check("vpn:office): Id not configured to be answered" in env.read(), "... and the log says why")

# A question without an Id is not ours either.
noid = env.ask(None, timeout=2)
env.check(env.answer(noid) is None, "a question without an Id is not answered")

# A question whose asker was SIGKILLed is left alone: its file stays, and a socket
# re-bound at its path (by us, root) must receive nothing.
env.stop_agent()
victim = env.ask("cryptsetup:/dev/killed", timeout=30)
ask_file = wait_for(lambda: next((os.path.join(ASK_DIR, n) for n in os.listdir(ASK_DIR) if n.startswith("ask.")), None),
                    what="victim's ask file")
sock_path = [l.split("=", 1)[1] for l in open(ask_file).read().splitlines() if l.startswith("Socket=")][0]
victim.send_signal(signal.SIGKILL)
victim.wait()
os.unlink(sock_path)
trap = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
old = os.umask(0o177)
trap.bind(sock_path)
os.umask(old)
env.start_agent()
env.wait_log(f"asker PID {victim.pid} is gone")
honest = env.ask("cryptsetup:/dev/honest")
env.check(env.answer(honest) == SECRET, "an honest question beside the dead asker's is answered")
try:
    got = trap.recv(4096)
except BlockingIOError:
    got = None
env.check(got is None, "nothing was sent to the SIGKILLed asker's socket")
trap.close()
os.unlink(ask_file)
os.unlink(sock_path)

# A retry after a wrong answer (AcceptCached=0, same Id) never gets the same secret.
first = TestAsker("cryptsetup:/dev/retry", accept_cached=True)
r = first.receive()
env.check(r is not None and candidates(r[0]) == [SECRET] and r[1] == 0, "first ask answered, from uid 0")
first.close()   # the asker deletes its file, as systemd does
time.sleep(0.1)
retry = TestAsker("cryptsetup:/dev/retry", accept_cached=False)
env.check(retry.receive(1.0) is None, "the retry (AcceptCached=0) is not sent the rejected secret")
env.wait_log("will not be offered to it again")
retry.close()
# A second candidate, cached later, is offered to the retry's next ask; the first never again.
env.put("Second-Candidate-9")
time.sleep(0.2)
again = TestAsker("cryptsetup:/dev/retry", accept_cached=False)
r = again.receive()
env.check(r is not None and candidates(r[0]) == ["Second-Candidate-9"], "the next retry gets only the untried candidate")
again.close()

# Several candidates: a fresh Id gets both, in one datagram, within 2049 bytes.
fresh = TestAsker("cryptsetup:/dev/fresh", accept_cached=True)
r = fresh.receive()
env.check(r is not None and sorted(candidates(r[0])) == sorted([SECRET, "Second-Candidate-9"]), "a fresh Id gets every candidate in one datagram")
fresh.close()

# The same question is never sent twice: touching its file does not trigger a second reply.
once = TestAsker("cryptsetup:/dev/once", accept_cached=True)
env.check(once.receive() is not None, "question answered")
os.utime(once.path)
os.utime(ASK_DIR)
env.check(once.receive(0.5) is None, "the same question is not answered twice")
once.close()

# `list` shows pending questions.
pending = env.ask("vpn:listed", timeout=5)
wait_for(lambda: any(n.startswith("ask.") for n in os.listdir(ASK_DIR)), what="a pending question")
time.sleep(0.1)
out = env.cli("list").stdout
env.check("Id=vpn:listed" in out and "alive" in out, "list shows the pending question, its Id and a live PID")
pending.kill()

# SIGTERM stops the agent cleanly.
env.check(env.stop_agent() == 0, "SIGTERM: exit status 0")

# sd_notify: READY=1 once the watch exists, STATUS= with the count, STOPPING=1; and SIGHUP
# re-reads the configuration (here: also answer vpn:* questions).
notify_path = os.path.join(env.dir, "notify.sock")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
notify.bind(notify_path)
conf = os.path.join(env.dir, "crypt-agent.conf")
with open(conf, "w") as f:
    f.write("match = cryptsetup:*\n")
os.environ["NOTIFY_SOCKET"] = notify_path
env.start_agent("--config", conf)
del os.environ["NOTIFY_SOCKET"]
def notifications():
    out = []
    while True:
        try:
            out.append(notify.recv(4096).decode())
        except BlockingIOError:
            return out
first = notifications()
env.check(any("READY=1" in m for m in first), "sd_notify READY=1 once watching")
q = TestAsker("vpn:reload", accept_cached=True)
env.check(q.receive(0.5) is None, "vpn:reload not answered under the old configuration")
q.close()
with open(conf, "w") as f:
    f.write("match = cryptsetup:*\nmatch = vpn:*\n")
env.agent.send_signal(signal.SIGHUP)
env.wait_log("configuration reloaded")
q = TestAsker("vpn:reload2", accept_cached=True)
r = q.receive()
env.check(r is not None and candidates(r[0]) != [], "after SIGHUP the new pattern is answered")
q.close()
with open(conf, "w") as f:
    f.write("match = cryptsetup:*\nkeyring = nowhere\n")
env.agent.send_signal(signal.SIGHUP)
env.wait_log(f"{conf}:2: keyring must be")
env.check(env.agent.poll() is None, "a bad configuration on SIGHUP is refused with file and line; the agent keeps running")
# Issue 13 item 5: a configuration file another user could have written is refused on
# SIGHUP as at start (as sshd does), so its "match = *" never sends the secret elsewhere.
with open(conf, "w") as f:
    f.write("match = *\n")
os.chmod(conf, 0o666)
env.agent.send_signal(signal.SIGHUP)
env.wait_log(f"{conf}: configuration file refused: writable by other users (mode 0666)")
q = TestAsker("other:hijack", accept_cached=True)
env.check(q.receive(0.5) is None and env.agent.poll() is None,
          "a group/other-writable configuration is refused on SIGHUP; its 'match = *' does not apply")
q.close()
os.chmod(conf, 0o644)
env.stop_agent()
# The command line wins over the file, at start and on SIGHUP alike.
with open(conf, "w") as f:
    f.write("match = cryptsetup:*\n")
env.start_agent("--config", conf, "--match", "vpn:*")
q = TestAsker("vpn:cli-wins", accept_cached=True)
env.check(q.receive() is not None, "--match on the command line wins over the file")
q.close()
env.agent.send_signal(signal.SIGHUP)
env.wait_log("configuration reloaded")
q = TestAsker("vpn:cli-wins-after-hup", accept_cached=True)
env.check(q.receive() is not None, "... and still wins after SIGHUP")
q.close()
env.stop_agent()
later = notifications()
env.check(any("STATUS=Answered" in m for m in later), "sd_notify STATUS= counts answers")
env.check(any("STOPPING=1" in m for m in later), "sd_notify STOPPING=1 on SIGTERM")
notify.close()

# The agent's own questions (PIN, enrolment) are never answered, even with --match '*'.
env.start_agent("--match", "*")
pin = TestAsker("crypt-agent:pin:Virtual PCD 00 00", accept_cached=True)
env.check(pin.receive(0.5) is None, "a crypt-agent:pin: question is never answered, even with --match '*'")
pin.close()
anything = TestAsker("vpn:any", accept_cached=True)
env.check(anything.receive() is not None, "... while --match '*' does answer other Ids")
anything.close()
env.stop_agent()

# A bad configuration at start: refused with file, line and reason; exit status 2.
with open(conf, "w") as f:
    f.write("# comment\ncache-lifetime = forever\n")
r = env.cli("serve", "--config", conf, check=False)
env.check(r.returncode == 2 and f"{conf}:2: cache-lifetime must be" in r.stderr, "a bad value at start names file and line")
env.finish()
