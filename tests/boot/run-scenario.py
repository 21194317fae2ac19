#!/usr/bin/python3
"""Boot one scenario under QEMU (TCG) and judge it from the serial console.

    run-scenario.py SCENARIO        (run.sh prepares the images and calls this)

Environment: BOOT_WORK (images, secrets, runs/), KERNEL. Prints what
happened with timestamps, then "PASS <scenario> ..." or "FAIL <scenario>: why",
and the boot time. Exit 0 on PASS, 1 on FAIL.

The stand-in person types at systemd's real console agent, on the guest's
serial console (QEMU's stdin): it waits for the prompt, types the passphrase
once and a newline, and never types again. Nothing else answers questions
but crypt-agent; the guest's test-boot-report prints the outcome.
"""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

WORK = os.environ["BOOT_WORK"]
KERNEL = os.environ["KERNEL"]
SRC = os.path.dirname(os.path.abspath(__file__))

# The console agent's prompt as systemd 252 draws it, suffix included, so that
# a log line quoting a question's Message= is not taken for a prompt.
PROMPT = re.compile(rb"Please enter (?:passphrase for disk|the PIN of the smartcard in reader) ([^\r\n]*?): "
                    rb"\(press TAB for no echo\)")
PIN_PROMPT = re.compile(rb"Please enter the PIN of the smartcard")
SILENCE = 150  # seconds without console output: the boot waits for input
SWITCH_ROOT = re.compile(rb"Switching root|Reached target[^\n]*Switch Root")


def secret(name):
    with open(os.path.join(WORK, "secrets", name), "rb") as f:
        return f.read()


def luks_uuid(image):
    return subprocess.check_output(["cryptsetup", "luksUUID", image], text=True).strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Person:
    """Types one passphrase (or PIN) at the first console prompt it is
    meant for, once: a disk's passphrase prompt, or with pin=True the card's
    PIN prompt."""

    def __init__(self, secret_name, pin=False):
        self.secret_name, self.pin = secret_name, pin
        self.typed_at = None

    def react(self, boot, prompt_name, prompt_text):
        if self.typed_at is not None or bool(PIN_PROMPT.search(prompt_text)) != self.pin:
            return
        time.sleep(0.5)  # a person reads the prompt first
        boot.type_line(secret(self.secret_name))
        self.typed_at = boot.now()
        boot.note(f"person typed the '{self.secret_name}' {'PIN' if self.pin else 'passphrase'} at the prompt for {prompt_name}")


class Card:
    """The host's card emulator, reaching the guest's vpcd through QEMU's
    hostfwd. It keeps reconnecting until vpcd speaks (the forward accepts
    before the guest listens)."""

    def __init__(self, port, log_path, extra_args=()):
        self.port, self.log_path, self.extra = port, log_path, list(extra_args)
        self.proc = None

    def start(self, timeout):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(SRC, "vicc-boot.py"), "-H", "127.0.0.1", "-P", str(self.port),
             "--retry", str(timeout)] + self.extra,
            stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()


class Boot:
    def __init__(self, name, initrd, disks, append="", nic=None, timeout=480, luks_root=True,
                 root_image="root.img"):
        self.name, self.initrd, self.disks, self.luks_root = name, initrd, disks, luks_root
        self.root_image = root_image
        self.append, self.nic, self.timeout = append, nic, timeout
        self.out = b""
        self.events = []
        os.makedirs(os.path.join(WORK, "runs"), exist_ok=True)
        self.log_path = os.path.join(WORK, "runs", f"{name}-{time.strftime('%H%M%S')}.log")
        self.log = open(self.log_path, "w")
        self.t0 = time.monotonic()
        self.proc = None
        self._line = b""
        self.last_output = 0.0

    def now(self):
        return time.monotonic() - self.t0

    def note(self, text):
        line = f"[{self.now():7.2f}] ## {text}"
        self.events.append(line)
        self.log.write(line + "\n")
        print(line, flush=True)

    def command(self):
        if self.luks_root:
            root_uuid = luks_uuid(os.path.join(WORK, self.root_image))
            root = f"rd.luks.uuid={root_uuid} root=/dev/mapper/luks-{root_uuid} rootfstype=ext4 ro"
        else:
            root = "root=LABEL=no-root-in-this-test"
        append = (f"console=ttyS0 {root} loglevel=4 systemd.show_status=1 rd.shell=0 rd.emergency=poweroff "
                  "panic=-1 net.ifnames=0 " + self.append)
        cmd = ["qemu-system-x86_64", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
               "-m", "1024", "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "1",
               "-kernel", KERNEL, "-initrd", self.initrd, "-append", append]
        for disk, snapshot in self.disks:
            cmd += ["-drive", f"file={disk},format=raw,if=virtio" + (",snapshot=on" if snapshot else "")]
        cmd += ["-nic", self.nic or "none"]
        return cmd

    def start(self):
        cmd = self.command()
        self.log.write("$ " + " ".join(cmd) + "\n")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        os.set_blocking(self.proc.stdout.fileno(), False)

    def type_line(self, data):
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def pump(self, wait):
        """Read what the console printed within `wait` seconds. False at EOF."""
        ready, _, _ = select.select([self.proc.stdout], [], [], wait)
        if not ready:
            return True
        chunk = self.proc.stdout.read()
        if chunk is None:  # non-blocking read found nothing after all
            return True
        if not chunk:
            return False
        self.last_output = self.now()
        self.out += chunk
        self._line += chunk
        *lines, self._line = self._line.split(b"\n")
        for line in lines:
            self.log.write(f"[{self.now():7.2f}] {line.decode(errors='replace').rstrip()}\n")
        self.log.flush()
        return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._line:
            self.log.write(f"[{self.now():7.2f}] {self._line.decode(errors='replace')}\n")
        self.log.close()


def drive(boot, person, stall):
    """Run the boot until the report is complete, the guest powers off, the
    boot stalls at a prompt nobody answers for `stall` seconds, or the
    overall timeout. Returns the reason it ended."""
    boot.start()
    seen_prompts = 0
    last_prompt_at = None
    report_begin = report_end = None
    switched = False
    while True:
        alive = boot.pump(0.2)
        prompts = list(PROMPT.finditer(boot.out))
        for m in prompts[seen_prompts:]:
            name = m.group(1).decode(errors="replace")
            boot.note(f"console prompt for {name}")
            last_prompt_at = boot.now()
            if person:
                person.react(boot, name, m.group(0))
        seen_prompts = len(prompts)
        if not switched and SWITCH_ROOT.search(boot.out):
            switched = True
            boot.note("switch-root")
        if report_begin is None and b"BOOT-REPORT-BEGIN" in boot.out:
            report_begin = boot.now()
            boot.note("report begins")
        if report_end is None and b"BOOT-REPORT-END" in boot.out:
            report_end = boot.now()
            boot.note("report complete")
        if not alive or boot.proc.poll() is not None:
            boot.note(f"qemu exited (rc={boot.proc.poll()})")
            return "exit", seen_prompts, report_begin
        if report_end is not None and boot.now() - report_end > 30:
            return "report", seen_prompts, report_begin
        if (report_begin is None and last_prompt_at is not None and person and person.typed_at is not None
                and last_prompt_at > person.typed_at and boot.now() - last_prompt_at > stall):
            boot.note(f"stalled: a prompt nobody answers, {stall} s without progress")
            return "stall", seen_prompts, report_begin
        if boot.now() - boot.last_output > SILENCE:
            # systemd prints nothing while the console agent waits for input.
            boot.note(f"silent: no console output for {SILENCE} s")
            return "silent", seen_prompts, report_begin
        if boot.now() > boot.timeout:
            boot.note(f"timeout after {boot.timeout} s")
            return "timeout", seen_prompts, report_begin


def parse_report(out):
    m = re.search(rb"BOOT-REPORT-BEGIN(.*?)BOOT-REPORT-END", out, re.S)
    if not m:
        return None
    text = m.group(1).decode(errors="replace").replace("\r", "")
    rep = {"text": text, "volumes": {}, "secrets": {}, "keys": [], "uptime": None}
    u = re.match(r" uptime=([0-9.]+)", text)
    rep["uptime"] = float(u.group(1)) if u else None
    for v in re.finditer(r"^VOLUME (\S+) unit=(\S*) open=(\w+) marker=(.*)$", text, re.M):
        rep["volumes"][v.group(1)] = {"unit": v.group(2), "open": v.group(3) == "yes", "marker": v.group(4).strip()}
    for s in re.finditer(r"^SECRET (\S+) journal-lines=(\d+)", text, re.M):
        rep["secrets"][s.group(1)] = int(s.group(2))
    rep["keys"] = re.findall(r"^KEY (.*)$", text, re.M)
    rd = re.search(r"^RUNDIR (.*)$", text, re.M)
    rep["rundir"] = rd.group(1).strip() if rd else None
    return rep


class Verdict:
    def __init__(self, name):
        self.name, self.failures = name, []

    def check(self, ok, what):
        print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failures.append(what)

    def finish(self, boot, boot_time):
        bt = f"boot time {boot_time:.1f} s" if boot_time is not None else f"ran {boot.now():.1f} s"
        if self.failures:
            print(f"FAIL {self.name} ({bt}): {'; '.join(self.failures)}  log={boot.log_path}", flush=True)
            return 1
        print(f"PASS {self.name} ({bt})  log={boot.log_path}", flush=True)
        return 0


def no_secret_leaks(v, boot, rep):
    leaked = [s for s in os.listdir(os.path.join(WORK, "secrets")) if secret(s) in boot.out]
    v.check(not leaked, f"no passphrase on the serial console (leaked: {leaked or 'none'})")
    if rep:
        bad = {k: n for k, n in rep["secrets"].items() if n}
        v.check(rep["secrets"] and not bad, f"no passphrase in the guest's journal (lines with one: {bad or 'none'})")


def volume_open(v, rep, name, marker):
    vol = rep["volumes"].get(name) if rep else None
    v.check(bool(vol and vol["open"] and vol["marker"].startswith(marker)),
            f"{name} opened, its file reads {marker} (got {vol})")


def disks(*names):
    return [(os.path.join(WORK, "root.img"), True)] + [(os.path.join(WORK, f"{n}.img"), True) for n in names]


# --- scenarios -------------------------------------------------------------

def typed_once(name):
    """(1) A person types the root passphrase once in the initramfs; the real
    root opens data1 (LUKS2) and data2 (LUKS1) with no further input."""
    boot = Boot(name, os.path.join(WORK, "initrd.img"), disks("data1", "data2"), append="test.expire-systemd-cache")
    person = Person("typed")
    try:
        end, prompts, report_at = drive(boot, person, stall=60)
    finally:
        boot.stop()
    rep = parse_report(boot.out)
    v = Verdict(name)
    v.check(person.typed_at is not None, "the person was asked for the root passphrase and typed it")
    v.check(rep is not None, f"the boot reached the real root's report (ended by: {end})")
    volume_open(v, rep, "data1", "DATA1-MARKER-OK")
    volume_open(v, rep, "data2", "DATA2-MARKER-OK")
    no_secret_leaks(v, boot, rep)
    finish_flushed(v, rep)
    return v.finish(boot, report_at)


def finish_flushed(v, rep):
    """(part of 3) After crypt-agent-finish: nothing cached in the keyring
    (neither the agent's key nor systemd's "cryptsetup" entry) or in /run."""
    if not rep:
        return
    print("  keys left in root's user keyring:", rep["keys"] or "none", "| /run/crypt-agent:", rep["rundir"])
    unit = re.search(r"^UNIT crypt-agent-finish (\S+) exited-at=(\d*) status=(\d*)", rep["text"], re.M)
    ran = bool(unit and unit.group(2) not in ("", "0") and unit.group(3) == "0")
    v.check(ran, f"crypt-agent-finish ran and exited 0 ({unit.group(0) if unit else 'no state'})")
    cached = [k for k in rep["keys"] if k.split(";")[-1] in ("crypt-agent:cache", "cryptsetup")]
    v.check(not cached, f"no cache key left in root's user keyring after finish (left: {cached or 'none'})")
    leftovers = [f for f in (rep["rundir"] or "").split() if f != "finished"]
    v.check(not leftovers, f"no cache file left in /run/crypt-agent after finish (left: {leftovers or 'none'})")


def agent_masked(name):
    """(4a) Control: the same boot with crypt-agent masked in both phases.
    The person types once; the real root's volumes must then wait at the
    console prompt (the test detects it and stops). Had they opened, the
    typed-once scenario would not show anything about the agent."""
    mask = " ".join(f"{p}systemd.mask={u}" for p in ("rd.", "") for u in ("crypt-agent.path", "crypt-agent.service"))
    boot = Boot(name, os.path.join(WORK, "initrd.img"), disks("data1", "data2"),
                append="test.expire-systemd-cache " + mask)
    person = Person("typed")
    try:
        end, prompts, report_at = drive(boot, person, stall=45)
    finally:
        boot.stop()
    rep = parse_report(boot.out)
    waiting = [m.group(1) for m in PROMPT.finditer(boot.out) if re.search(rb"data1|data2", m.group(1))]
    v = Verdict(name)
    v.check(person.typed_at is not None, "the person typed the root passphrase in the initramfs")
    v.check(bool(waiting), f"the real root asked for data1/data2 on the console ({len(waiting)} prompts)")
    v.check(end == "stall" and rep is None,
            f"the boot waited at that prompt with nobody typing, until stopped (ended by: {end})")
    if rep:
        print("  report (should not exist):", rep["volumes"])
    return v.finish(boot, None)


def wrong_key(name):
    """(4b) Control: a volume none of whose keyslots holds a candidate the
    agent has (wrong.img: only a passphrase nobody types). The agent's
    candidate is rejected, it steps aside, the console asks, nobody types:
    the volume stays closed and the boot goes on once crypttab's 30 s
    password timeout passes (nofail), instead of hanging."""
    boot = Boot(name, os.path.join(WORK, "initrd.img"), disks("data1", "data2", "wrong"),
                append="test.expire-systemd-cache")
    person = Person("typed")
    try:
        end, prompts, report_at = drive(boot, person, stall=120)
    finally:
        boot.stop()
    rep = parse_report(boot.out)
    v = Verdict(name)
    v.check(rep is not None, f"the boot went on to the real root's report (ended by: {end})")
    vol = rep["volumes"].get("wrong") if rep else None
    v.check(bool(vol and not vol["open"] and vol["unit"].startswith("failed")),
            f"wrong stayed closed and its unit failed after the timeout (got {vol})")
    volume_open(v, rep, "data1", "DATA1-MARKER-OK")
    volume_open(v, rep, "data2", "DATA2-MARKER-OK")
    no_secret_leaks(v, boot, rep)
    return v.finish(boot, report_at)


def card_reaches_guest(name):
    """Infrastructure of the smartcard scenarios: the card emulator on the
    host reaches the initramfs's pcscd (installed by the dracut module because
    the configuration uses a card) through QEMU's hostfwd and the vpcd driver,
    and `crypt-agent card status` in the initramfs sees the card."""
    initrd = os.path.join(WORK, "initrd-card.img")
    port = free_port()
    nic = f"user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:35963"
    boot = Boot(name, initrd, [], append="test.card-status", nic=nic, timeout=420, luks_root=False)
    card = Card(port, boot.log_path.replace(".log", ".vicc.log"),
                ["--secret", "000102030405060708090a0b0c0d0e0f", "--pin", "123456", "--strict"])
    card.start(timeout=300)
    try:
        end, _, _ = drive(boot, None, stall=0)
    finally:
        boot.stop()
        card.stop()
    m = re.search(rb"CARD-STATUS-BEGIN(.*?)CARD-STATUS-END", boot.out, re.S)
    status = m.group(1).decode(errors="replace") if m else ""
    print("  card status in the guest:", status.strip().replace("\n", " | ") or "none")
    v = Verdict(name)
    v.check(m is not None, f"the initramfs ran crypt-agent card status (ended by: {end})")
    v.check("card present" in status, "it saw the host's card through vpcd")
    return v.finish(boot, None)


def card_one_pin(name):
    """(2) The card on the host, the PIN typed once: the initramfs's agent
    asks for the PIN through ask-password (the person types it at the console
    agent), derives the root volume's key from one card operation, and the
    real root opens data1 and data2 with no further input. The disks'
    card keyslots were added by prepare-card.sh from keys computed on the
    host; nothing else in the guest knows them."""
    port = free_port()
    nic = f"user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:35963"
    card_disks = [(os.path.join(WORK, f"{n}-card.img"), True) for n in ("root", "data1", "data2")]
    boot = Boot(name, os.path.join(WORK, "initrd-card-luks.img"), card_disks, append="test.expire-systemd-cache",
                nic=nic, root_image="root-card.img")
    card = Card(port, boot.log_path.replace(".log", ".vicc.log"),
                ["--secret", "000102030405060708090a0b0c0d0e0f", "--pin", secret("card-pin").decode(), "--strict"])
    person = Person("card-pin", pin=True)
    card.start(timeout=480)
    try:
        end, prompts, report_at = drive(boot, person, stall=60)
    finally:
        boot.stop()
        card.stop()
    rep = parse_report(boot.out)
    disk_prompts = [m.group(1) for m in PROMPT.finditer(boot.out) if not PIN_PROMPT.search(m.group(0))]
    v = Verdict(name)
    v.check(bool(PIN_PROMPT.search(boot.out)),
            "the agent's PIN question reached the console (systemd's console agent shows one question at a "
            "time: a disk's passphrase prompt on screen hides it)")
    v.check(person.typed_at is not None, "the person typed the PIN once")
    v.check(bool(SWITCH_ROOT.search(boot.out)), "the root volume opened from the card (the boot switched root)")
    v.check(rep is not None, f"the boot reached the real root's report (ended by: {end})")
    volume_open(v, rep, "data1", "DATA1-MARKER-OK")
    volume_open(v, rep, "data2", "DATA2-MARKER-OK")
    print(f"  passphrase prompts on the console (nobody typed at them): {len(disk_prompts)}")
    no_secret_leaks(v, boot, rep)
    return v.finish(boot, report_at)


# "fakeclock": these boots expire systemd's 150 s keyring cache at once (see
# initrd-overlay/etc/systemd/system/test-expire-systemd-cache.service).
SCENARIOS = {
    "typed-once-fakeclock": typed_once,
    "control-agent-masked-fakeclock": agent_masked,
    "control-wrong-key-fakeclock": wrong_key,
    "card-reaches-guest": card_reaches_guest,
    "card-one-pin": card_one_pin,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(SCENARIOS)}")
    sys.exit(SCENARIOS[sys.argv[1]](sys.argv[1]))
