#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The cache key is the owner's alone (issue 13, item 3).

A child that drops to another uid but keeps root's session keyring (as runuser, setpriv and
su do without pam_keyinit force) possesses every key linked there.  It must not read the
cache, change its timeout or overwrite it; a key of that name it plants must not receive
the next cache.  Real root (other uids), the agent on a private session keyring."""
import shutil, subprocess
from harness import Env, TestAsker, candidates, skip

if not shutil.which("setpriv"):
    skip("setpriv is not installed (apt-get install util-linux)")
env = Env("keyperm")
SECRET = "Keyperm-Test-Secret-7"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def keyctl(*args, as_nobody=False, stdin=None):
    return subprocess.run([*(NOBODY if as_nobody else []), "keyctl", *args], input=stdin,
                          capture_output=True, text=True, timeout=10)


def cache_key():
    r = keyctl("search", "@s", "user", "crypt-agent:cache")
    return r.stdout.strip() if r.returncode == 0 else None


env.put(SECRET)
kid = cache_key()
env.check(kid is not None, "cache put stored the cache key in the session keyring")
desc = keyctl("rdescribe", kid).stdout.strip().split(";")
env.check(len(desc) >= 4 and desc[1] == "0" and desc[3] == "003f0000",
          f"the cache key is owned by uid 0 with permissions 003f0000 (got {';'.join(desc[:4])})")

r = keyctl("print", kid, as_nobody=True)
env.check(r.returncode != 0 and SECRET not in r.stdout, "a uid-dropped child cannot read the cache key")
r = keyctl("timeout", kid, "0", as_nobody=True)
env.check(r.returncode != 0, "a uid-dropped child cannot remove the cache key's timeout")
r = keyctl("pupdate", kid, as_nobody=True, stdin="forged")
env.check(r.returncode != 0, "a uid-dropped child cannot overwrite the cache key")
r = keyctl("padd", "user", "crypt-agent:cache", "@s", as_nobody=True, stdin="forged")
env.check(r.returncode != 0, "a uid-dropped child cannot replace it by adding a key of the same name")
env.check(keyctl("rdescribe", kid).returncode == 0, "the cache key is still there")

env.start_agent()
a = TestAsker("cryptsetup:/dev/keyperm")
got = a.receive(5)
a.close()
env.check(got is not None and candidates(got[0]) == [SECRET], "the agent still answers from its cache")
env.stop_agent()

# A key planted under the cache's name by the child (it unlinks ours: it may write to the
# session keyring it possesses) must neither be loaded nor receive the next cache.
kid = cache_key() or kid  # each save makes a new key
keyctl("unlink", kid, "@s", as_nobody=True)
planted = keyctl("padd", "user", "crypt-agent:cache", "@s", as_nobody=True, stdin="forged")
if planted.returncode == 0:
    env.put(SECRET + "-2")
    kid2 = cache_key()
    desc2 = keyctl("rdescribe", kid2).stdout.strip().split(";") if kid2 else []
    env.check(len(desc2) >= 4 and desc2[1] == "0" and desc2[3] == "003f0000",
              f"cache put over a planted key makes a key of its own (got {';'.join(desc2[:4])})")
    r = keyctl("print", planted.stdout.strip(), as_nobody=True)
    env.check(SECRET not in r.stdout, "nothing secret went into the planted key")
    r = keyctl("print", kid2 or "0", as_nobody=True)
    env.check(r.returncode != 0, "the child cannot read the new cache key")
else:
    print(f"note: the child could not plant a key ({planted.stderr.strip()})")
env.finish()
