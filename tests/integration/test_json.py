#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""--json=short|pretty of `list` and `cache status` (issue 16), on the real agent binary.

`list` sees real questions: one from the real systemd-ask-password, two from TestAsker (one
with a deadline and a Message that is not UTF-8, one that cannot be parsed).  `cache status`
sees the real keyring cache after `cache put`.  Each output is parsed with Python's json; the
fields are checked against the known state; --json=pretty parses equal to --json=short; no
secret appears; a bad mode is an error that names it, with nothing on stdout.
"""
import json, os, re, time
from harness import Env, TestAsker, wait_for, ASK_DIR

env = Env("json")


def run(*args, check=True):
    return env.cli(*args, check=check)


def both(*args):
    """The document in short and pretty form; checks both parse to the same value."""
    short = run(*args, "--json=short")
    pretty = run(*args, "--json=pretty")
    env.check(short.stdout.count("\n") == 1, f"{' '.join(args)} --json=short is one line")
    env.check(pretty.stdout.count("\n") > 3 and pretty.stdout.startswith("{\n  \""),
              f"{' '.join(args)} --json=pretty is indented")
    a, b = json.loads(short.stdout), json.loads(pretty.stdout)
    # Ages and time left may tick between the two runs.
    def steady(doc):
        if isinstance(doc, dict):
            return {k: steady(v) for k, v in doc.items() if k not in ("age_seconds", "seconds_left")}
        if isinstance(doc, list):
            return [steady(v) for v in doc]
        return doc
    env.check(steady(a) == steady(b), f"{' '.join(args)}: pretty parses equal to short")
    bare = json.loads(run(*args, "--json").stdout)
    env.check(steady(bare) == steady(a), f"{' '.join(args)}: plain --json is short")
    return a, short.stdout + pretty.stdout


# --- list ---------------------------------------------------------------------------------
doc, _ = both("list", "--ask-dir", os.path.join(env.dir, "absent"))
env.check(doc == {"ask_dir": os.path.join(env.dir, "absent"), "ask_dir_exists": False, "questions": []},
          f"list of a missing ask directory: no questions ({doc})")

real = env.ask("cryptsetup:/dev/json-vol", message='Passphrase for "json-vol" \\ é:', timeout=30)
def real_file():
    for n in os.listdir(ASK_DIR):
        try:
            if n.startswith("ask.") and "Id=cryptsetup:/dev/json-vol\n" in open(os.path.join(ASK_DIR, n)).read():
                return n
        except OSError:
            pass
    return None
real_name = wait_for(real_file, what="systemd-ask-password's question")
deadline = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000 + 600 * 1000000
odd = TestAsker(ident="vpn:json", not_after=deadline, accept_cached=True, name="ask.json-odd",
                extra="Icon=network-vpn\n")
# A Message that is not UTF-8 (the parser accepts any byte but controls): JSON gets U+FFFD.
with open(odd.path, "rb") as f:
    body = f.read().replace(b"Message=Test question", b"Message=caf\xe9 \xff")
tmp = odd.path + ".tmp"
with open(tmp, "wb") as f:
    f.write(body)
os.rename(tmp, odd.path)
bad = TestAsker(ident="x", name="ask.json-bad", extra="NotAfter=soon\n")

doc, text = both("list")
qs = {q["file"]: q for q in doc["questions"]}
env.check(doc["ask_dir"] == ASK_DIR and doc["ask_dir_exists"] is True, "list names the ask directory")
env.check(set(qs) == {real_name, "ask.json-odd", "ask.json-bad"}, f"list shows the three questions ({sorted(qs)})")
q = qs.get(real_name, {})
env.check(q.get("id") == "cryptsetup:/dev/json-vol" and q.get("pid") == real.pid and q.get("pid_alive") is True,
          f"systemd-ask-password's question: Id, PID, alive ({q})")
env.check(q.get("message") == 'Passphrase for "json-vol" \\ é:', f"its Message survives quotes, backslash, UTF-8 ({q.get('message')!r})")
env.check(q.get("accept_cached") is False and q.get("echo") is False and q.get("silent") is False,
          "its AcceptCached, Echo and Silent")
env.check(isinstance(q.get("not_after_usec"), int) and 0 < q.get("seconds_left", -1) <= 30 and q.get("expired") is False,
          f"its deadline: --timeout=30 ({q.get('not_after_usec')}, {q.get('seconds_left')} s left)")
env.check(q.get("socket", "").startswith(ASK_DIR), "its Socket")
o = qs.get("ask.json-odd", {})
env.check(o.get("message") == "caf\ufffd \ufffd", f"bytes that are not UTF-8 become U+FFFD ({o.get('message')!r})")
env.check(o.get("id") == "vpn:json" and o.get("accept_cached") is True and o.get("icon") == "network-vpn"
          and o.get("not_after_usec") == deadline and 590 <= o.get("seconds_left", 0) <= 600,
          f"TestAsker's question: Id, AcceptCached, Icon, NotAfter ({o})")
b = qs.get("ask.json-bad", {})
env.check(set(b) == {"file", "error"} and "NotAfter" in b.get("error", ""), f"an unreadable question: file and error only ({b})")
env.check('\\"json-vol\\"' in text and "\\\\" in text, "quotes and backslashes are escaped in the raw output")
odd.close()  # its Message is not UTF-8: the text form prints it as it is
plain = run("list").stdout
env.check("Id=cryptsetup:/dev/json-vol" in plain and not plain.lstrip().startswith("{"), "list without --json is text")
for mode in ("off", "short", "pretty"):
    r = run("list", f"--json={mode}")
    env.check(r.returncode == 0, f"--json={mode} is a mode")
# The seconds left tick between the two runs (a slow sanitizer build crosses a second).
untimed = lambda t: re.sub(r"\d+ s left", "N s left", t)
env.check(untimed(run("list", "--json=off").stdout) == untimed(plain), "--json=off is the text")
bad.close()

# --- a bad mode -----------------------------------------------------------------------------
r = run("list", "--json=yaml", check=False)
env.check(r.returncode == 2 and r.stdout == "" and r.stderr.startswith("crypt-agent list: ") and "'yaml'" in r.stderr,
          f"--json=yaml: exit 2, the error names the mode, nothing on stdout ({r.returncode}: {r.stderr.strip()})")
r = run("cache", "status", "--json=xml", check=False)
env.check(r.returncode == 2 and r.stdout == "" and "crypt-agent cache status: " in r.stderr and "'xml'" in r.stderr,
          f"cache status --json=xml: exit 2, named ({r.stderr.strip()})")

# --- cache status -----------------------------------------------------------------------------
doc, _ = both("cache", "status")
env.check(doc["cached"] is False and doc["candidates"] == 0 and doc["entries"] == [] and doc["store"] is None
          and doc["finished"] is False, f"nothing cached ({doc})")

SECRET = "Json-Status-Secret-7f3a"
env.put(SECRET, "--ttl", "600", "--match", "cryptsetup:/dev/json-*")
doc, text = both("cache", "status")
env.check(doc["cached"] is True and doc["candidates"] == 1, f"after one put: candidates 1 ({doc.get('candidates')})")
env.check(doc["store"] == "keyring" and doc["keyring"] == env.keyring and doc["key_name"] == "crypt-agent:cache"
          and doc["file"] is None, f"the store: keyring ({doc['store']}, {doc['keyring']}, {doc['key_name']})")
env.check(590 <= doc["seconds_left"] <= 600 and 0 <= doc["age_seconds"] <= 10,
          f"lifetime left and age ({doc['seconds_left']} s left, {doc['age_seconds']} s old)")
e = doc["entries"][0] if doc["entries"] else {}
env.check(e.get("origin") == "put" and e.get("patterns") == ["cryptsetup:/dev/json-*"] and e.get("opened") is False
          and e.get("sent_to") == [] and e.get("rejected_by") == [], f"the entry: origin, patterns, no Ids yet ({e})")
env.check(set(e) == {"origin", "age_seconds", "opened", "patterns", "sent_to", "rejected_by"},
          f"an entry has no value and no length ({sorted(e)})")
env.check(SECRET not in text, "the secret is not in the JSON")

env.put("Json-Status-Secret-second")
doc, text = both("cache", "status")
env.check(doc["candidates"] == 2 and len(doc["entries"]) == 2 and doc["entries"][1]["patterns"] == [],
          "after a second put: candidates 2, the second answers the configured Ids")
env.check(all(s not in text for s in env.secrets), "neither secret is in the JSON")

# The agent answers a question from the cache: the Id it sent to is a stored hash.
env.start_agent()
answered = env.ask("cryptsetup:/dev/json-vol2", timeout=10)
env.check(env.answer(answered) is not None, "the agent answered from the cache")
env.stop_agent()
doc, text = both("cache", "status")
hashes = [h for c in doc["entries"] for h in c["sent_to"] + c["rejected_by"]]
env.check(len(hashes) >= 1 and all(len(h) == 16 and int(h, 16) >= 0 for h in hashes),
          f"Ids appear as their 64-bit hashes, 16 hex digits ({hashes})")
env.check("json-vol2" not in text, "the Id itself is not in the cache's JSON")
env.check(all(s not in text for s in env.secrets), "no secret in the JSON after the agent used the cache")
env.cli("cache", "flush")
real.kill()
env.finish()
