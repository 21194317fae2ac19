# SPDX-License-Identifier: MIT
"""Integration-test harness: the real crypt-agent against the real systemd-ask-password.

Every test runs inside `isolate.sh`: a private user namespace (its own root user
keyring, so nothing touches the machine's), a private mount namespace with a tmpfs on
/run/systemd (its own ask directory), and a fresh session keyring that links the user
keyring, as KeyringMode=shared gives the agent's unit.  Processes started here are
stopped by PID in Env.close().

TestAsker is a second asker written from systemd's protocol (temp file, SO_PASSCRED
datagram socket, rename to ask.*) for what systemd-ask-password cannot express:
hostile files, chosen AcceptCached values, sockets elsewhere.  It is a real asker on
real sockets, not a mock of the agent.
"""
import os, signal, socket, stat, struct, subprocess, sys, tempfile, time

ASK_DIR = "/run/systemd/ask-password"
BIN = os.environ.get("CRYPT_AGENT_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "agent", "crypt-agent")

SKIP = 77


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def fault_hooks():
    """True when the agent was built with the test-only fault injection hooks."""
    out = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout
    return "fault injection hooks compiled in" in out


def require_isolation():
    if os.environ.get("CRYPT_AGENT_ISOLATED") != "1":
        print("run me through tests/integration/isolate.sh", file=sys.stderr)
        sys.exit(2)


def wait_for(pred, timeout=5.0, step=0.01, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Env:
    def __init__(self, name, keyring=None):
        require_isolation()
        self.name = name
        # In a private user namespace the agent uses its default, root's user keyring
        # (private to the namespace); without one, a session keyring.
        self.keyring = keyring or ("user" if os.environ.get("CRYPT_AGENT_USERNS") == "1" else "session")
        self.dir = tempfile.mkdtemp(prefix=f"ca-{name}-")
        self.cache_dir = os.path.join(self.dir, "cache")
        self.procs = []
        self.logs = []
        self.secrets = []
        self.agent = None
        self.failures = 0
        os.makedirs(ASK_DIR, exist_ok=True)
        # A test that dies on an exception still stops every process it started.
        import atexit
        atexit.register(self.close)

    # -- the agent ---------------------------------------------------------------
    def cli(self, *args, stdin=None, check=True):
        r = subprocess.run([BIN, *args, "--cache-dir", self.cache_dir, "--keyring", self.keyring], input=stdin,
                           capture_output=True, text=True, timeout=20)
        log = os.path.join(self.dir, f"cli-{len(self.logs)}.log")
        with open(log, "w") as f:
            f.write(r.stdout + r.stderr)
        self.logs.append(log)
        if check and r.returncode != 0:
            raise AssertionError(f"crypt-agent {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def put(self, secret, *args):
        self.secrets.append(secret)
        return self.cli("cache", "put", *args, stdin=secret + "\n")

    def start_agent(self, *args, tag="agent", ready=True, journal=False):
        """journal=True: the log file stands for the journal's stream, as under systemd
        (JOURNAL_STREAM names it), so each line carries its "<N>" priority."""
        log = os.path.join(self.dir, f"{tag}-{len(self.logs)}.log")
        self.logs.append(log)
        f = open(log, "w")
        penv = None
        if journal:
            st = os.fstat(f.fileno())
            penv = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        p = subprocess.Popen([BIN, "serve", "--cache-dir", self.cache_dir, "--keyring", self.keyring,
                              "--log-level", "debug", *args],
                             stdout=f, stderr=subprocess.STDOUT, env=penv)
        f.close()
        self.procs.append(p)
        self.agent, self.agent_log = p, log
        if ready:
            wait_for(lambda: "watching" in self.read(log) or p.poll() is not None, what="agent ready")
            if p.poll() is not None:
                raise AssertionError(f"agent exited early:\n{self.read(log)}")
        return p

    def stop_agent(self, p=None):
        p = p or self.agent
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError("agent did not stop within 5 s of SIGTERM")
        return p.returncode

    def read(self, path=None):
        try:
            with open(path or self.agent_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=5.0, path=None):
        return wait_for(lambda: text in self.read(path), timeout, what=f"log line {text!r}")

    # -- the real systemd-ask-password -------------------------------------------
    def ask(self, ident, message="Passphrase:", timeout=10, accept_cached=False, extra=()):
        args = ["systemd-ask-password", "--no-tty", f"--timeout={timeout}"]
        if ident is not None:
            args.append(f"--id={ident}")
        if accept_cached:
            args.append("--accept-cached")
        args += [*extra, message]
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    @staticmethod
    def answer(p, timeout=15):
        """The password systemd-ask-password printed, or None if it got none."""
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            return None
        return out.rstrip("\n") if p.returncode == 0 else None

    # -- checks --------------------------------------------------------------------
    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            self.failures += 1

    def check_no_secret_in_logs(self):
        leaked = []
        for log in self.logs:
            text = self.read(log)
            for s in self.secrets:
                if s and s in text:
                    leaked.append((log, "a test secret"))
        self.check(not leaked, f"no secret in {len(self.logs)} log(s)")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        for n in os.listdir(ASK_DIR) if os.path.isdir(ASK_DIR) else []:
            try:
                os.unlink(os.path.join(ASK_DIR, n))
            except OSError:
                pass

    def finish(self, skipped=None):
        """Ends the test: 1 when a check failed, else 77 when `skipped` names a part that
        could not run, else 0."""
        try:
            self.check_no_secret_in_logs()
        finally:
            self.close()
        if self.failures:
            print(f"{self.name}: {self.failures} check(s) failed; logs in {self.dir}")
            for log in self.logs:
                print(f"--- {log}\n{self.read(log)[-4000:]}")
            sys.exit(1)
        if skipped:
            print(f"SKIP: {skipped}")
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)
            sys.exit(SKIP)
        print(f"{self.name}: all checks passed")
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)
        sys.exit(0)


class TestAsker:
    """An asker that writes its question the way systemd 252 does, with knobs."""
    counter = 0

    def __init__(self, ident=None, accept_cached=False, not_after=0, pid=None, socket_path=None,
                 ask_dir=ASK_DIR, extra="", mode=0o644, bind=True, name=None):
        TestAsker.counter += 1
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock_path = socket_path or os.path.join(ask_dir, f"sck.test{os.getpid()}x{TestAsker.counter}")
        if bind:
            old = os.umask(0o177)
            try:
                self.sock.bind(self.sock_path)
            finally:
                os.umask(old)
        body = f"[Ask]\nPID={pid or os.getpid()}\nSocket={self.sock_path}\nAcceptCached={int(accept_cached)}\n" \
               f"Echo=0\nNotAfter={not_after}\nSilent=0\nMessage=Test question\n"
        if ident is not None:
            body += f"Id={ident}\n"
        body += extra
        self.path = os.path.join(ask_dir, name or f"ask.test{os.getpid()}x{TestAsker.counter}")
        tmp = os.path.join(ask_dir, f"tmp.test{os.getpid()}x{TestAsker.counter}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        os.write(fd, body.encode())
        os.fchmod(fd, mode)
        os.close(fd)
        os.rename(tmp, self.path)

    def receive(self, timeout=2.0):
        """(payload, uid) of the first datagram, or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except BlockingIOError:
                time.sleep(0.005)
                continue
            uid = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    _, uid, _ = struct.unpack("iII", cdata[:12])
            return data, uid
        return None

    def close(self):
        for p in (self.sock_path, self.path):
            try:
                os.unlink(p)
            except OSError:
                pass
        self.sock.close()


def candidates(payload):
    """The candidates of a '+a\\0b' reply, as systemd splits them."""
    if not payload or payload[:1] != b"+":
        return []
    return [c.decode() for c in payload[1:].rstrip(b"\0").split(b"\0")]
