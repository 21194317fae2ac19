#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""vicc-boot: the virtual card of the boot tests, reaching a QEMU guest's vpcd.

Debian's vicc (virtualsmartcard 0.8, iso7816 card) with what a boot test
needs: a fixed card key, real PIN semantics, save/load of the card state, an
answer (6F00) instead of a crash, and fast APDUs. It connects to the guest's
vpcd through QEMU's hostfwd (-nic user,...,hostfwd=tcp:127.0.0.1:PORT-:35963).

  vicc-boot.py -P PORT --retry SECS [--secret HEX32] [--pin PIN] [--strict]
               [--ef FID[:SFI]=HEX ...] [--protect FID ...] [--load F] [--save F]

--retry SECS  keep reconnecting for up to SECS: a connect through QEMU's
              hostfwd succeeds on the host even when nothing listens in the
              guest yet, so a connection counts only once vpcd sends its first
              message within --probe seconds (default 1).
--secret      16-byte AES key used by INTERNAL AUTHENTICATE (stock: random)
--pin         PIN for VERIFY (stock default 1234)
--ef          FID[:SFI]=HEX  a transparent EF under the MF with that content
--load/--save the card state (a pickle of this script's classes) on SIGTERM
--strict      PIN semantics of a real card: 63Cx retry counter, empty VERIFY =
              status query, INTERNAL AUTHENTICATE and READ BINARY of --protect
              EFs need a prior VERIFY (6982), reset clears it, blocked after 3.
The guest-listens direction only: Debian's vpcd aborts pcscd after a dropped
connection when it is the one connecting out.
"""
import argparse, logging, os, pickle, signal, socket, sys

sys.path.insert(0, '/usr/lib/python3/site-packages/virtualsmartcard')
# Debian ships pycryptodome as 'Cryptodome'; virtualsmartcard imports 'Crypto'.
import Cryptodome, Cryptodome.Cipher.DES3, Cryptodome.Cipher.DES, Cryptodome.Cipher.AES, \
    Cryptodome.Cipher.ARC4, Cryptodome.Hash.HMAC, Cryptodome.Hash.SHA, Cryptodome.Hash.MD5, \
    Cryptodome.PublicKey.RSA, Cryptodome.PublicKey.DSA
for _n, _m in list(sys.modules.items()):
    if _n == 'Cryptodome' or _n.startswith('Cryptodome.'):
        sys.modules['Crypto' + _n[len('Cryptodome'):]] = _m

from virtualsmartcard.VirtualSmartcard import VirtualICC, Iso7816OS
from virtualsmartcard.SmartcardFilesystem import MF, TransparentStructureEF
from virtualsmartcard.SmartcardSAM import SAM
from virtualsmartcard.SWutils import SwError, SW
from virtualsmartcard.ConstantDefinitions import FDB

ap = argparse.ArgumentParser()
ap.add_argument('-H', '--hostname', default='127.0.0.1')
ap.add_argument('-P', '--port', type=int, default=35963)
ap.add_argument('--secret', default=None)
ap.add_argument('--pin', default='1234')
ap.add_argument('--ef', action='append', default=[])
ap.add_argument('--load')
ap.add_argument('--save')
ap.add_argument('--strict', action='store_true')
ap.add_argument('--protect', action='append', default=[])
ap.add_argument('--retry', type=float, default=0)
ap.add_argument('--probe', type=float, default=1.0)
ap.add_argument('-v', '--verbose', action='count', default=0)
args = ap.parse_args()


class LabSAM(SAM):
    """SAM with optional real-card PIN semantics (only active when strict=True)."""
    strict = False
    verified = False
    MAX = 3

    def verify(self, p1, p2, pin):
        if not self.strict:
            return SAM.verify(self, p1, p2, pin)
        if p1 == 0xFF:                       # ISO 7816-4: reset security status
            self.verified = False
            return SW["NORMAL"], b""
        if p1 != 0x00:
            raise SwError(SW["ERR_INCORRECTP1P2"])
        if self.counter == 0:
            raise SwError(SW["ERR_AUTHBLOCKED"])
        if not pin:                           # status query, no decrement
            if self.verified:
                return SW["NORMAL"], b""
            raise SwError(0x63C0 | self.counter)
        if pin.rstrip(b"\0\xff") == self.PIN:
            self.counter, self.verified = self.MAX, True
            return SW["NORMAL"], b""
        self.counter -= 1
        self.verified = False
        if self.counter == 0:
            raise SwError(SW["ERR_AUTHBLOCKED"])
        raise SwError(0x63C0 | self.counter)

    def change_reference_data(self, p1, p2, data):
        if not self.strict:
            return SAM.change_reference_data(self, p1, p2, data)
        if p1 != 0x00 or len(data) % 2:
            raise SwError(SW["ERR_INCORRECTPARAMETERS"])
        old, new = data[:len(data) // 2], data[len(data) // 2:]
        self.verify(0, p2, old)               # raises 63Cx / 6983 on wrong old PIN
        self.PIN = new.rstrip(b"\0\xff")
        return SW["NORMAL"], b""

    def internal_authenticate(self, p1, p2, data):
        if self.strict and not self.verified:
            raise SwError(SW["ERR_SECSTATUS"])
        if len(data) == 0 or len(data) % 16:
            raise SwError(SW["ERR_WRONGLENGTH"])
        return SAM.internal_authenticate(self, p1, p2, data)


# SwError only knows the codes in its table; add 63C0..63CF
from virtualsmartcard import SWutils
for _i in range(16):
    SWutils.SW_MESSAGES.setdefault(0x63C0 | _i, 'Verification failed, %d tries left' % _i)


class LabOS(Iso7816OS):
    def __init__(self, mf, sam, protect=()):
        Iso7816OS.__init__(self, mf, sam)
        self.protect = set(protect)
        self.ins2handler[0xb0] = self.read_binary

    def read_binary(self, p1, p2, data):
        sam = self.SAM
        if sam.strict and not sam.verified:
            ef = self.mf.currentEF() if not p1 & 0x80 else None
            if p1 & 0x80:
                try:
                    ef = self.mf.currentDF().select('shortfid', p1 & 0x1f)
                except SwError:
                    ef = None
            if ef is not None and ef.fid in self.protect:
                raise SwError(SW["ERR_SECSTATUS"])
        return self.mf.readBinaryPlain(p1, p2, data)

    def execute(self, msg):
        try:
            return Iso7816OS.execute(self, msg)
        except Exception:
            logging.exception("card crashed on %s, answering 6F00", msg.hex())
            return b"\x6f\x00"

    def powerDown(self):
        self.SAM.verified = False

    def powerUp(self):
        self.SAM.verified = False
        Iso7816OS.powerUp(self)

    def reset(self):
        self.SAM.verified = False
        Iso7816OS.reset(self)


def build_card():
    if args.load:
        with open(args.load, 'rb') as f:
            st = pickle.load(f)
        return st['mf'], st['sam']
    secret = bytes.fromhex(args.secret) if args.secret else None
    sam = LabSAM(args.pin.encode(), b"1234567890", cardSecret=secret)
    mf = MF(filedescriptor=FDB["DF"])
    sam.set_MF(mf)
    for spec in args.ef:                       # FID[:SFI]=HEX
        ref, hexdata = spec.split('=')
        fid, _, sfi = ref.partition(':')
        mf.append(TransparentStructureEF(parent=mf, fid=int(fid, 16), shortfid=int(sfi or '0', 16),
                                         data=bytes.fromhex(hexdata)))
    return mf, sam


logging.basicConfig(level=[logging.ERROR, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                    format="%(asctime)s [%(levelname)s] %(message)s")
mf, sam = build_card()
sam.strict = args.strict
if sam.strict:
    sam.verified = False


def save(*_):
    if args.save:
        tmp = args.save + '.tmp'
        with open(tmp, 'wb') as f:
            pickle.dump({'mf': mf, 'sam': sam}, f)
        os.replace(tmp, args.save)
        logging.info("card saved to %s", args.save)


def on_signal(signum, frame):
    save()
    os._exit(0)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)

import time


class QuickAckSocket:
    """Debian's vpcd writes the 2-byte length and the APDU with two send() calls; with
    Nagle on its side and delayed ACK on ours every exchange costs ~44 ms.  Re-arming
    TCP_QUICKACK around each recv() makes it ~1 ms."""
    def __init__(self, s):
        self._s = s
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def recv(self, n):
        self._s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        d = self._s.recv(n)
        self._s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return d

    def __getattr__(self, name):
        return getattr(self._s, name)


def stamp(msg):
    print("%.3f vicc-boot: %s" % (time.time(), msg), flush=True)


# Build the VirtualICC without its constructor (which would connect at once,
# with no retry); run() only needs these attributes.
vicc = VirtualICC.__new__(VirtualICC)
vicc.os = LabOS(mf, sam, [int(x, 16) for x in args.protect])
vicc.type = 'iso7816'
vicc.port = args.port
vicc.host = args.hostname
vicc.server_sock = None
deadline = time.time() + args.retry
tries = 0
while True:
    tries += 1
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.connect((args.hostname, args.port))
        s.settimeout(args.probe)
        first = s.recv(2, socket.MSG_PEEK)   # vpcd polls (ATR request) every 400 ms
        if first:
            s.settimeout(None)
            break
        why = "EOF (nothing listening behind the forward yet)"
    except socket.timeout:
        why = "no data within %.1fs" % args.probe
    except OSError as e:
        why = str(e)
    s.close()
    if time.time() > deadline:
        stamp("giving up after %d tries: %s" % (tries, why))
        sys.exit(1)
    if tries == 1 or tries % 10 == 0:
        stamp("try %d: %s; retrying" % (tries, why))
    time.sleep(0.2)
stamp("connected to vpcd at %s:%d after %d tries" % (args.hostname, args.port, tries))
vicc.sock = QuickAckSocket(s)
try:
    vicc.run()
finally:
    save()
