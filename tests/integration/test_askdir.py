#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The ask directory: created if missing, re-created and re-watched when removed, refused
as a symlink at start and while serving."""
import ctypes, os, re, shutil, subprocess, time
from harness import ASK_DIR, Env, TestAsker, candidates, wait_for

env = Env("askdir")
SECRET = "Dir-Test-Secret-77"
env.put(SECRET)
private = os.path.join(env.dir, "asks")   # does not exist yet

env.start_agent("--ask-dir", private)
env.check(os.path.isdir(private) and (os.stat(private).st_mode & 0o777) == 0o755, "agent created the missing ask dir 0755")
q = TestAsker("cryptsetup:/dev/a", ask_dir=private)
r = q.receive()
env.check(r is not None and candidates(r[0]) == [SECRET], "question in the created directory answered")
q.close()

# Removed while the agent runs: it re-creates and re-watches.
shutil.rmtree(private)
env.wait_log("was removed or moved")
wait_for(lambda: os.path.isdir(private), what="ask dir re-created")
time.sleep(0.05)
q = TestAsker("cryptsetup:/dev/b", ask_dir=private)
r = q.receive(3)
env.check(r is not None and candidates(r[0]) == [SECRET], "question after the directory was removed and re-created answered")
q.close()

# Removed and re-created by someone else (as a fresh tmpfs mount would be).
shutil.rmtree(private)
os.mkdir(private, 0o755)
time.sleep(0.2)
q = TestAsker("cryptsetup:/dev/c", ask_dir=private)
r = q.receive(3)
env.check(r is not None and candidates(r[0]) == [SECRET], "question after the directory was replaced answered")
q.close()
env.check(env.stop_agent() == 0, "agent stops cleanly")

# A symlink as the ask directory is refused at start with a clear message.
link = os.path.join(env.dir, "link")
os.symlink(private, link)
p = env.start_agent("--ask-dir", link, ready=False)
p.wait(5)
env.check(p.returncode != 0 and "a symlink is refused" in env.read(), "a symlinked ask dir is refused with a reason")

# Replaced by a symlink while the agent runs: the directory is swapped in one step
# (renameat2 RENAME_EXCHANGE) for a symlink to another directory that holds an honest-looking
# question, and askers then write their questions through the symlink.  Nothing may be
# answered there; one line says why; a real directory coming back is served again.
RENAME_EXCHANGE = 2
libc = ctypes.CDLL(None, use_errno=True)
def exchange(a, b):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), RENAME_EXCHANGE) != 0:  # AT_FDCWD
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

def systemd_version():
    out = subprocess.run(["systemd-ask-password", "--version"], capture_output=True, text=True).stdout
    m = re.match(r"systemd (\d+)", out)
    return int(m.group(1)) if m else 0

env.start_agent()                                  # the standard (private) ask directory
q = TestAsker("cryptsetup:/dev/before-swap")
r = q.receive()
env.check(r is not None and candidates(r[0]) == [SECRET], "question in the real ask dir answered")
q.close()
parent = os.path.dirname(ASK_DIR)
elsewhere = os.path.join(parent, "elsewhere")
os.mkdir(elsewhere, 0o755)
# Its Socket= names the path through the symlink, as an asker writing there would.
lure = TestAsker("cryptsetup:/dev/lure", ask_dir=elsewhere, socket_path=os.path.join(ASK_DIR, "sck.lure"), bind=False)
old = os.umask(0o177)
lure.sock.bind(os.path.join(elsewhere, "sck.lure"))
os.umask(old)
link, aside = os.path.join(parent, "ask-link"), os.path.join(parent, "ask-aside")
os.symlink(elsewhere, link)
exchange(link, ASK_DIR)                            # ASK_DIR is now the symlink; the real dir is at `link`
os.rename(link, aside)
env.check(os.path.islink(ASK_DIR), "the ask directory is now a symlink to another directory")

# The agent's property, whatever the asker: a question written through the symlinked
# directory (file and socket both reached through ASK_DIR, as systemd 252's asker does)
# is never answered.
through = TestAsker("cryptsetup:/dev/through-link", ask_dir=ASK_DIR)
env.check(os.path.exists(os.path.join(elsewhere, os.path.basename(through.path))),
          "a question written through the symlink lands in its target")
env.check(through.receive(3) is None, "no answer to the question written through the symlink")

# systemd's own asker: 252 opens /run/systemd/ask-password by path and writes its question
# through the symlink; 257 opens the directory with O_NOFOLLOW (open_mkdir) and refuses to
# ask at all.  Each behaviour is checked where it is systemd's; either way the agent is silent.
version = systemd_version()
before = set(os.listdir(elsewhere))
real = env.ask("cryptsetup:/dev/through-link-systemd", timeout=3)
if version >= 257:
    try:
        real.wait(8)
    except subprocess.TimeoutExpired:
        pass
    env.check(real.returncode not in (None, 0),
              f"systemd {version}'s systemd-ask-password refuses the symlinked ask directory")
    env.check(not any(n.startswith("ask.") for n in set(os.listdir(elsewhere)) - before),
              f"systemd {version} wrote no question behind the symlink")
else:
    try:
        wrote = wait_for(lambda: any(n.startswith("ask.") for n in set(os.listdir(elsewhere)) - before),
                         what="systemd-ask-password's question behind the symlink") is True
    except AssertionError:
        wrote = False
    if version <= 252:
        env.check(wrote, f"systemd {version}'s systemd-ask-password asked through the symlink")
    else:
        print(f"note systemd {version}: systemd-ask-password {'asked through' if wrote else 'refused'} the symlink")
    env.check(env.answer(real, timeout=8) is None, "no answer to systemd-ask-password's question through the symlink")
env.check(lure.receive(0.5) is None, "no datagram to the question in the symlink's target")
env.check(env.agent.poll() is None, "the agent keeps running")
refused = [l for l in env.read().splitlines() if "symlink" in l]
env.check(len(refused) == 1, f"one log line says the symlink is refused (got {len(refused)})")
through.close()
# A real directory comes back: served again.
os.unlink(ASK_DIR)
os.rename(aside, ASK_DIR)
q = TestAsker("cryptsetup:/dev/after-swap")
r = q.receive(4)
env.check(r is not None and candidates(r[0]) == [SECRET], "question after the real directory came back answered")
q.close()
env.check("watching " + ASK_DIR + " again" in env.read(), "the log says the directory is watched again")
env.check(lure.receive(0.2) is None, "still nothing sent to the lure")
lure.close()
shutil.rmtree(elsewhere)
env.check(env.stop_agent() == 0, "agent stops cleanly")
env.finish()
