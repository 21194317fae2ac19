#!/usr/bin/python3
# SPDX-License-Identifier: MIT
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
import base64
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
sys.path.insert(0, SRC)
import card_keys  # noqa: E402  (the host's own computation of the card keys)

# The console agent's prompt as systemd 252 draws it, suffix included, so that
# a log line quoting a question's Message= is not taken for a prompt.
PROMPT = re.compile(rb"Please enter (?:passphrase for disk|the PIN of the smartcard in reader|the PIN of token) ([^\r\n]*?): "
                    rb"\(press TAB for no echo\)")
PIN_PROMPT = re.compile(rb"Please enter the PIN of (?:the smartcard|token)")
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
                 root_image="root.img", devices=()):
        self.name, self.initrd, self.disks, self.luks_root = name, initrd, disks, luks_root
        self.devices = list(devices)
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
        cmd += ["-nic", self.nic or "none"] + self.devices
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
            # The initramfs's prompts were answered (the root opened): only a prompt in the
            # real root can stall the boot now. (A slow machine took more than `stall` seconds
            # from the root's prompt to the real root's questions and was taken for stalled.)
            last_prompt_at = None
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


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def console_text(raw):
    """A stretch of the serial console as text the reports can be parsed from:
    systemd's status lines interleave colour and erase-line codes (ESC[K) with
    the guest's own lines, so those codes and the carriage returns go."""
    return ANSI.sub("", raw.decode(errors="replace").replace("\r", ""))


def parse_report(out):
    m = re.search(rb"BOOT-REPORT-BEGIN(.*?)BOOT-REPORT-END", out, re.S)
    if not m:
        return None
    text = console_text(m.group(1))
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

def typed_once(name, extra_checks=None):
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
    if extra_checks:
        extra_checks(v, rep)
    return v.finish(boot, report_at)


def from_package(v, rep):
    """(package.sh) The boot ran what the Debian package installed: the real
    root's answers came from /usr/sbin/crypt-agent, which dpkg says belongs to
    the installed package and whose checksum matches the package's; the units
    systemd loaded are the package's, enabled (by its maintainer scripts:
    package.sh checked that before the boot and enabled none itself)."""
    text = rep["text"] if rep else ""
    answered = re.findall(r"^ANSWERED-BY host=(\S*) exe=(\S*)", text, re.M)
    print("  answered by:", answered or "nobody")
    real_root = [exe for host, exe in answered if host == "boot-test"]
    v.check(bool(real_root) and all(exe == "/usr/sbin/crypt-agent" for exe in real_root),
            f"the agent that answered data1/data2 in the real root is /usr/sbin/crypt-agent (got {real_root or 'none'})")
    pkg = re.search(r"^PACKAGE crypt-agent (\S+) installed agent-owner=(\S*)", text, re.M)
    v.check(bool(pkg and pkg.group(2) == "crypt-agent"),
            f"dpkg in the guest: the crypt-agent package is installed and owns /usr/sbin/crypt-agent "
            f"({pkg.group(0) if pkg else 'no PACKAGE line'})")
    verify = re.search(r"^PACKAGE-VERIFY (.*)$", text, re.M)
    v.check(bool(verify and verify.group(1).strip() == "ok"),
            f"dpkg --verify crypt-agent in the guest: every file as the package shipped it "
            f"({verify.group(1).strip() if verify else 'no PACKAGE-VERIFY line'})")
    units = re.findall(r"^PACKAGE-UNIT (\S+) (\S+) path=(\S*) owner=(\S*)", text, re.M)
    for unit, state, path, owner in units:
        print(f"  {unit}: {state}, {path}, from package {owner or '-'}")
    v.check(len(units) == 3 and all(owner == "crypt-agent" for _, _, _, owner in units),
            "the three units systemd loaded are the package's files")
    state = {unit: st for unit, st, _, _ in units}
    v.check(state.get("crypt-agent.path") == "enabled" and state.get("crypt-agent-finish.service") == "enabled",
            f"crypt-agent.path and crypt-agent-finish.service are enabled ({state or 'no PACKAGE-UNIT lines'})")


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
    # "finished" is finish's marker, <uuid>.lock rotation's empty flock files, "answered" the
    # record of which questions were answered (agent/answer/answered_log.hpp): none holds a secret.
    leftovers = [f for f in (rep["rundir"] or "").split()
                 if f not in ("finished", "answered") and not f.endswith(".lock")]
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


def card_boot(name, initrd, disks, root_image, card_key=card_keys.CARD_KEY, append="", stall=60):
    """One boot with the host's card (the test card key unless told, PIN
    secrets/card-pin) reaching the guest's vpcd, and a person who types the PIN
    once at the agent's PIN question. Returns (boot, person, how it ended,
    report time)."""
    port = free_port()
    nic = f"user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:35963"
    boot = Boot(name, os.path.join(WORK, initrd), disks, append="test.expire-systemd-cache " + append, nic=nic,
                root_image=root_image)
    card = Card(port, boot.log_path.replace(".log", ".vicc.log"),
                ["--secret", card_key, "--pin", secret("card-pin").decode(), "--strict"])
    person = Person("card-pin", pin=True)
    card.start(timeout=480)
    try:
        end, _, report_at = drive(boot, person, stall=stall)
    finally:
        boot.stop()
        card.stop()
    return boot, person, end, report_at


def card_one_pin(name):
    """(2) The card on the host, the PIN typed once: the initramfs's agent
    asks for the PIN through ask-password (the person types it at the console
    agent), derives the root volume's key from one card operation, and the
    real root opens data1 and data2 with no further input. The disks'
    card keyslots were added by prepare-card.sh from keys computed on the
    host; nothing else in the guest knows them."""
    card_disks = [(os.path.join(WORK, f"{n}-card.img"), True) for n in ("root", "data1", "data2")]
    boot, person, end, report_at = card_boot(name, "initrd-card-luks.img", card_disks, "root-card.img")
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


def control_wrong_card_key(name):
    """(4c) Control: the card disks with a card whose key is not the one the
    disks were set up with (the PIN is right). The agent's keys are wrong for
    every volume: the root's question is answered once, rejected, and asked
    again; the agent steps aside and nobody types. crypttab-style timeout=30s
    (rd.luks.options) ends the root's question, the root never appears, and
    the initramfs gives up (rd.emergency=poweroff): the boot ends by itself
    instead of hanging, and no volume opened."""
    card_disks = [(os.path.join(WORK, f"{n}-card.img"), True) for n in ("root", "data1", "data2")]
    boot, person, end, report_at = card_boot(name, "initrd-card-luks.img", card_disks, "root-card.img",
                                             card_key="ffeeddccbbaa99887766554433221100",
                                             append="rd.luks.options=timeout=30s", stall=600)
    v = Verdict(name)
    out = boot.out
    pin_at = PIN_PROMPT.search(out)
    v.check(person.typed_at is not None, "the person typed the PIN once (the PIN is right, the card key is not)")
    root_prompts = [m for m in PROMPT.finditer(out) if not PIN_PROMPT.search(m.group(0))
                    and pin_at and m.start() > pin_at.start()]
    v.check(bool(root_prompts), f"after the agent's wrong answer the root's question reached the console "
                                f"({len(root_prompts)} prompt(s); nobody types at them)")
    v.check(not SWITCH_ROOT.search(out), "the root volume stayed closed (no switch-root)")
    v.check(end == "exit", f"the boot ended by itself once the timeouts passed (ended by: {end}, "
                           f"after {boot.now():.0f} s)")
    # systemd's status lines carry colour codes between the words.
    failed = re.search(rb"Failed to start (?:\x1b\[[0-9;]*m)?systemd-cr", out)
    sysroot = re.search(rb"Dependency failed for (?:\x1b\[[0-9;]*m)?sysroot.mount", out)
    v.check(bool(failed and sysroot), "the console says why: the root's systemd-cryptsetup unit failed "
                                      f"({bool(failed)}), so /sysroot could not be mounted ({bool(sysroot)})")
    no_secret_leaks(v, boot, None)
    return v.finish(boot, None)


def opens(image, key):
    """Whether `key` opens some keyslot of `image` (no device-mapper: --test-passphrase); key on stdin."""
    return subprocess.run(["cryptsetup", "open", "--test-passphrase", "--key-file", "-", image], input=key,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def rot_store(out):
    """What test-rotate-store printed: {"store": {file: content}, "root": mount options of /,
    "rundir": what /run/crypt-agent holds, "rundir_secrets": how many files there hold a
    test secret}, or {} when it printed nothing."""
    m = re.search(rb"ROT-STORE-BEGIN(.*?)ROT-STORE-END", out, re.S)
    if not m:
        return {}
    text = console_text(m.group(1))

    def line(tag):
        found = re.search(rf"^{tag} ?(.*)$", text, re.M)
        return found.group(1).strip() if found else None
    n = line("ROT-RUNDIR-SECRETS")
    return {"store": {f: base64.b64decode(b).decode()
                      for f, b in re.findall(r"^ROT-STORE (\S+) ([A-Za-z0-9+/=]+)$", text, re.M)},
            "root": line("ROT-ROOT"), "rundir": line("ROT-RUNDIR"),
            "rundir_secrets": int(n) if n and n.isdigit() else None}


class Tagged:
    """A Verdict whose checks name the boot they belong to."""

    def __init__(self, verdict, tag):
        self.verdict, self.tag = verdict, tag

    def check(self, ok, what):
        self.verdict.check(ok, f"{self.tag}: {what}")


def ccid_boot(name, initrd, disks, root_image, append="", stall=60):
    """card_boot's twin for the CCID scenarios: the card in QEMU's own CCID
    reader (ccid_devices), the person types secrets/ccid-pin once at the
    agent's PIN question."""
    boot = Boot(name, os.path.join(WORK, initrd), disks, append="test.expire-systemd-cache " + append,
                root_image=root_image, devices=ccid_devices(name))
    person = Person("ccid-pin", pin=True)
    try:
        end, _, report_at = drive(boot, person, stall=stall)
    finally:
        boot.stop()
    return boot, person, end, report_at


def card_rotate(name, kind="vicc"):
    """(3) Rotation at the end of boot, and the next boot with the new keys.
    prepare-rotate.sh enrolled root (LUKS2), data1 (LUKS2) and data2 (LUKS1,
    its record in the root's default LUKS1 store, /boot/crypt-agent) with `crypt-agent enroll`
    against the same virtual card. Boot 1 on writable copies: the person types
    the PIN once at the agent's PIN question, all three volumes open, and
    crypt-agent-finish flushes every cache and rotates from it (no card, no
    PIN). Boot 2 on the same disks: the PIN once, all three open. The host
    computes each generation's keys from the records (card_keys.py, not the
    project's code) and checks which of them open which disk.
    kind "ccid" (ccid-one-pin-rotate): the same through QEMU's own CCID reader
    with libcacard's CAC card, enrolled by its PKCS#11 key (prepare-rotate.sh
    with CARD_KIND=ccid); the host signs with the key exported from the card's
    database (card_keys.py, CARD_RSA_KEY)."""
    vols = ("root", "data1", "data2")
    r = "ccid-rot" if kind == "ccid" else "rot"
    if kind == "ccid":
        os.environ["CARD_RSA_KEY"] = os.path.join(WORK, "secrets", "ccid-key1.pem")
    d = os.path.join(WORK, "runs", f"{name}-disks")
    os.makedirs(d, exist_ok=True)
    img = {n: os.path.join(d, f"{n}-{r}.img") for n in vols}
    for n in vols:
        subprocess.run(["cp", "--sparse=always", os.path.join(WORK, f"{n}-{r}.img"), img[n]], check=True)
    uuid = {n: card_keys.luks_uuid(img[n]) for n in vols}
    typed = secret("typed")
    v = Verdict(name)

    def records(store_files):
        """Each volume's seed record: LUKS2 tokens from the disks, data2's from the store files given."""
        recs = {n: card_keys.token_record(img[n]) for n in ("root", "data1")}
        text = store_files.get(f"{uuid['data2']}.rec") if store_files else None
        recs["data2"] = card_keys.store_record(text, uuid["data2"]) if text else None
        return recs

    def keys_of(recs):
        """{volume: {generation: key}} of every generation the records name."""
        return {n: {g: card_keys.volume_key(seed, uuid[n]) for g, seed in card_keys.generations(r).items()}
                for n, r in recs.items() if r}

    def current_gen(recs, n):
        return card_keys.current(recs[n])[0] if recs.get(n) else None

    with open(os.path.join(WORK, f"{r}-store", f"{uuid['data2']}.rec")) as f:
        recs0 = records({f"{uuid['data2']}.rec": f.read()})
    keys0 = keys_of(recs0)
    print("  before boot 1:", {n: current_gen(recs0, n) for n in vols})
    v.check(all(n in keys0 and any(opens(img[n], k) for k in keys0[n].values()) for n in vols),
            "before boot 1 the keys computed on the host from the enrolled records open all three disks")

    def one_boot(tag):
        if kind == "ccid":
            boot, person, end, report_at = ccid_boot(f"{name}-{tag}", "initrd-ccid-rot.img",
                                                     [(img[n], False) for n in vols], img["root"])
        else:
            boot, person, end, report_at = card_boot(f"{name}-{tag}", "initrd-card-rot.img",
                                                     [(img[n], False) for n in vols], img["root"])
        rep = parse_report(boot.out)
        tv = Tagged(v, tag)
        pin_prompts = [m for m in PROMPT.finditer(boot.out) if PIN_PROMPT.search(m.group(0))]
        disk_prompts = len([m for m in PROMPT.finditer(boot.out)]) - len(pin_prompts)
        print(f"  {tag}: log {boot.log_path}")
        tv.check(person.typed_at is not None and len(pin_prompts) == 1,
                 f"the PIN was asked for once and typed once (PIN prompts: {len(pin_prompts)})")
        root_line = re.search(r"^ROOT (.*)$", rep["text"], re.M) if rep else None
        tv.check(bool(root_line and uuid["root"] in root_line.group(1)),
                 f"the root volume opened from the card and is / (ended by: {end}; "
                 f"{root_line.group(0) if root_line else 'no report'})")
        volume_open(tv, rep, "data1", "DATA1-MARKER-OK")
        volume_open(tv, rep, "data2", "DATA2-MARKER-OK")
        print(f"  {tag}: passphrase prompts on the console (nobody typed at them): {disk_prompts}")
        finish_flushed(tv, rep)
        no_secret_leaks(tv, boot, rep)
        shown = rot_store(boot.out)
        root_opts = shown.get("root")
        tv.check(bool(root_opts and "rw" in root_opts.split(",")),
                 f"/ is writable, so finish can rewrite the LUKS1 store (mount options: {root_opts})")
        tv.check(shown.get("rundir_secrets") == 0,
                 f"no file left in /run/crypt-agent holds the PIN, a passphrase, an enrolled key or the card's "
                 f"response ({shown.get('rundir_secrets')} do; files: {shown.get('rundir')})")
        store = shown.get("store")
        print(f"  {tag}: boot time {report_at:.1f} s" if report_at is not None else f"  {tag}: no report")
        return boot, rep, store, report_at

    def after(tag, store, retired):
        """Host checks after a boot: every volume rotated past `retired`'s
        generations, none of whose keys opens any more, and the records' current
        keys open. Returns the records."""
        recs = records(store)
        keys = keys_of(recs)
        print(f"  after {tag}:", {n: current_gen(recs, n) for n in vols})
        for n in vols:
            old = retired.get(n, {})
            cur = current_gen(recs, n)
            v.check(bool(cur is not None and old and cur > max(old)),
                    f"after {tag}: {n} rotated (current generation {cur}, was {max(old) if old else None})")
            still = sorted(g for g, k in old.items() if opens(img[n], k))
            v.check(bool(old) and not still,
                    f"after {tag}: keys of generations {sorted(old)} no longer open {n} (still open: {still or 'none'})")
            ck = keys.get(n, {}).get(cur)
            v.check(ck is not None and opens(img[n], ck), f"after {tag}: the current generation's key opens {n}")
        return recs, keys

    times = {}
    boot1, rep1, store1, times["boot 1"] = one_boot("boot1")
    boots, known = [boot1], [recs0]
    if rep1 is None:
        print("  boot 1 did not reach the report: no second boot")
    else:
        recs1, keys1 = after("boot 1", store1, keys0)
        known.append(recs1)
        boot2, rep2, store2, times["boot 2"] = one_boot("boot2")
        boots.append(boot2)
        if rep2 is not None:
            retired = {n: {**keys0.get(n, {}), **keys1.get(n, {})} for n in vols}
            recs2, _ = after("boot 2", store2, retired)
            known.append(recs2)
            for n in vols:
                v.check(opens(img[n], typed), f"after boot 2: the person's passphrase still opens {n}")
    # Every generation's card response and keys the host knows of: none on a console.
    derived = []
    for recs in known:
        for n, r in recs.items():
            for seed in (card_keys.generations(r) if r else {}).values():
                resp = card_keys.card_response(seed).hex()
                derived += [resp.encode(), resp.upper().encode(), card_keys.volume_key(seed, uuid[n])]
    shown = [b.name for b in boots if any(k in b.out for k in derived)]
    v.check(not shown, f"no card response or derived key of any generation on the console "
                       f"({len(derived)} strings; on: {shown or 'none'})")
    print("  boot times:", ", ".join(f"{t} {s:.1f} s" if s is not None else f"{t} -" for t, s in times.items()))
    return v.finish(boots[-1], times.get(f"boot {len(boots)}"))


def ccid_devices(tag):
    """QEMU's own CCID reader (usb-ccid on the PIIX3 UHCI bus of -usb) holding
    libcacard's CAC card, backed by a fresh copy of prepare-ccid.sh's NSS
    database (the card may write to it)."""
    os.makedirs(os.path.join(WORK, "runs"), exist_ok=True)
    db = os.path.join(WORK, "runs", f"{tag}-db")
    subprocess.run(["rm", "-rf", db], check=True)
    subprocess.run(["cp", "-a", os.path.join(WORK, "ccid-db"), db], check=True)
    return ["-usb", "-device", "usb-ccid", "-device",
            f"ccid-card-emulated,backend=certificates,db=sql:{db},cert1=cert1,cert2=cert2,cert3=cert3"]


def ccid_reaches_guest(name):
    """A real CCID reader for the guest: QEMU's usb-ccid with libcacard's
    emulated CAC card. In the initramfs, what the dracut module installed for
    a PKCS#11 key (card-uri) - pcscd with libccid, p11-kit's proxy and the
    registered OpenSC module - shows the token and its three certificates
    (pkcs11-tool through the proxy), and so does `crypt-agent card list`, as
    on a laptop."""
    boot = Boot(name, os.path.join(WORK, "initrd-ccid.img"), [], append="test.ccid-status", timeout=420,
                luks_root=False, devices=ccid_devices(name))
    try:
        end, _, _ = drive(boot, None, stall=0)
    finally:
        boot.stop()
    m = re.search(rb"CCID-STATUS-BEGIN(.*?)CCID-STATUS-END", boot.out, re.S)
    status = console_text(m.group(1)) if m else ""
    print("  in the guest:\n    " + "\n    ".join(status.strip().splitlines()) if status else "  in the guest: nothing")
    v = Verdict(name)
    v.check(m is not None, f"the initramfs ran the token check (ended by: {end})")
    v.check(bool(re.search(r"^USB-CCID-INTERFACES \S", status, re.M)), "the guest's USB bus has a CCID interface")
    v.check(bool(re.search(r"CCID Interface[^\n]*\n\s*token label\s*: Test CAC cert1\n", status)),
            "p11-kit's proxy lists the CCID reader's token 'Test CAC cert1' (pcscd + libccid + OpenSC)")
    v.check(bool(re.search(r"(?i)token manufacturer\s*: Common Access Card", status)),
            "OpenSC's CAC driver read it (manufacturer 'Common Access Card')")
    listed = status.partition("CCID-CARD-LIST")[2]
    v.check('token "Test CAC cert1"' in listed,
            "crypt-agent card list in the initramfs (p11-kit's proxy loaded by the agent) shows the token")
    ids = sorted(set(re.findall(r"ID:\s+(000[123])", status)))
    v.check(ids == ["0001", "0002", "0003"], f"its three certificates, ids 0001..0003, are listed (got {ids})")
    leaked = [s for s in ("ccid-pin",) if secret(s) in boot.out]
    v.check(not leaked, f"no PIN on the console (leaked: {leaked or 'none'})")
    return v.finish(boot, None)


# "fakeclock": these boots expire systemd's 150 s keyring cache at once (see
# initrd-overlay/etc/systemd/system/test-expire-systemd-cache.service).
SCENARIOS = {
    "typed-once-fakeclock": typed_once,
    # package.sh: the same boot from the Debian package's files (its own work directory).
    "package-typed-once": lambda name: typed_once(name, extra_checks=from_package),
    "control-agent-masked-fakeclock": agent_masked,
    "control-wrong-key-fakeclock": wrong_key,
    "card-reaches-guest": card_reaches_guest,
    "card-one-pin": card_one_pin,
    "card-control-wrong-key": control_wrong_card_key,
    "card-rotate": card_rotate,
    "ccid-reaches-guest": ccid_reaches_guest,
    "ccid-one-pin-rotate": lambda name: card_rotate(name, kind="ccid"),
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(SCENARIOS)}")
    sys.exit(SCENARIOS[sys.argv[1]](sys.argv[1]))
