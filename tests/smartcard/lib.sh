# SPDX-License-Identifier: MIT
# Shared helpers for the smartcard tests (sourced).  Each test gets a private
# pcscd + virtual card (fixture/fixture.sh), a private ask directory, and
# stops everything it started, by PID, on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FIXTURE="$HERE/fixture/fixture.sh"
: "${CARD_TOOL:?CARD_TOOL (the card command driver) not set}"
: "${PCSC_WAIT:?PCSC_WAIT not set}"
export PCSC_WAIT
REPLY_PASSWORD=/lib/systemd/systemd-reply-password
[ -x "$REPLY_PASSWORD" ] || { echo "SKIP: $REPLY_PASSWORD (package systemd) missing" >&2; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (private mount namespace for pcscd, root-only PIN replies)" >&2; exit 77; }

T=$(mktemp -d /tmp/crypt-agent-sc.XXXXXX)
ASK="$T/ask"; mkdir -p "$ASK"
PIDS=()
FIXTURE_UP=0
PIN=123456
UUIDS=(0b7c5a6e-2f3d-4a1b-9c8d-7e6f5a4b3c2d 5f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0 c0ffee00-1234-4abc-8def-0123456789ab)
# LAB.md vector: card key 000102..0F, seed = 32 bytes of 0x11.
LAB_RESPONSE=35D14E6D3E3A279CF01E343E34E7DED3B9227EA666F1D6B8D105C10405844F4D
printf '11%.0s' $(seq 32) > "$T/seed.hex"

cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ $FIXTURE_UP = 1 ] && "$FIXTURE" stop "$T/fx" || true
  if [ $rc = 0 ] || [ $rc = 77 ]; then rm -rf "$T"; else echo "test files kept in $T" >&2; fi
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log "$T"/*.err; do [ -f "$f" ] && { echo "--- $f" >&2; tail -30 "$f" >&2; }; done; exit 1; }
ok() { echo "ok: $*"; }

fixture() {   # fixture start|pull|insert|... [options]
  local c=$1; shift
  "$FIXTURE" "$c" "$T/fx" "$@"
  [ "$c" = start ] && FIXTURE_UP=1
  set -a; . "$T/fx/env"; set +a
}

card() { "$CARD_TOOL" --ask-dir "$ASK" --log-level debug card "$@"; }

# start_card NAME CARD-ARGS...: `card CARD-ARGS` in the background (BG = its
# own PID, not a subshell's), stdout NAME.out, stderr NAME.err
start_card() {
  local name=$1; shift
  "$CARD_TOOL" --ask-dir "$ASK" --log-level debug card "$@" > "$T/$name.out" 2> "$T/$name.err" &
  BG=$!
  PIDS+=("$BG")
}

# answer_pins PIN...: answers successive PIN questions (Id crypt-agent:pin:*) in
# $ASK with the given PINs through systemd's own reply sender; each question's
# Message goes to $T/prompts.  Stops after the last PIN.
answer_pins() {
  (
    seen=" "
    for pin in "$@"; do
      while :; do
        f=""
        for a in "$ASK"/ask.*; do
          [ -e "$a" ] || continue
          case "$seen" in *" $a "*) continue;; esac
          grep -q '^Id=crypt-agent:pin:' "$a" 2>/dev/null || continue
          f=$a; break
        done
        [ -n "$f" ] && break
        sleep 0.05
      done
      seen="$seen$f "
      sed -n 's/^Message=//p' "$f" >> "$T/prompts"
      sock=$(sed -n 's/^Socket=//p' "$f")
      printf '%s' "$pin" | "$REPLY_PASSWORD" 1 "$sock" || true
    done
  ) &
  PIDS+=("$!")
}

# expected_pass RESPONSE_HEX SEED_HEX UUID: the passphrase by an independent
# HKDF-SHA256 (Python's hmac), per the layout documented in smartcard/derive.hpp.
expected_pass() {
  python3 - "$@" <<'PY'
import hashlib, hmac, sys
resp, seed, uuid = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3].lower()
prk = hmac.new(seed, resp, hashlib.sha256).digest()
okm = hmac.new(prk, b"luks-sc-agent-v1" + uuid.encode() + b"\x01", hashlib.sha256).digest()
print(okm.hex())
PY
}

# apdus INS: how many commands with that instruction byte the card received.
apdus() { grep -c "^..$1" "$T/fx/apdu.log" 2>/dev/null || true; }
# verifies_with_pin: VERIFY commands that carried a PIN (Lc present; each may spend a try).
verifies_with_pin() { grep -c '^0020....[0-9A-F][0-9A-F] ' "$T/fx/apdu.log" 2>/dev/null || true; }

# no_secrets_in_logs SECRET...: none of these strings in any log or error output.
no_secrets_in_logs() {
  local s f
  for s in "$@"; do
    [ -n "$s" ] || continue
    for f in "$T"/*.err "$T"/fx/*.log; do
      [ -f "$f" ] || continue
      if grep -qiF -- "$s" "$f"; then fail "a secret appears in $f"; fi
    done
  done
  ok "no PIN, response or passphrase in any log"
}

wait_for() {   # wait_for SECONDS CMD...: polls CMD every 0.05 s
  local end=$(( $(date +%s%N) + ${1%.*} * 1000000000 )); shift
  while ! "$@" 2>/dev/null; do
    [ "$(date +%s%N)" -lt $end ] || return 1
    sleep 0.05
  done
}

# card_volumes_conf FILE [LINE...]: an agent configuration with the three test
# volumes (UUIDS) as card-volume lines sharing the lab seed, no LUKS tokens,
# then the given lines.
card_volumes_conf() {
  local file=$1 i
  shift
  {
    echo "card-seed-file = $T/seed.hex"
    for i in 0 1 2; do echo "card-volume = cryptsetup:/dev/vol$i ${UUIDS[$i]}"; done
    echo "card-luks-tokens = no"
    printf '%s\n' "$@"
  } > "$file"
}

# notify_listener: systemd's end of sd_notify at $T/notify.sock; each datagram
# becomes one line of $T/notify.log, with the monotonic time it came.
notify_listener() {
  python3 - "$T/notify.sock" >> "$T/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    msg = s.recv(4096).decode(errors="replace").replace("\n", " ")
    print(f"{time.monotonic():.3f} {msg}", flush=True)
PY
  PIDS+=("$!")
  wait_for 5 test -S "$T/notify.sock" || fail "notify listener did not start"
}

# ask_volumes TIMEOUT TAG ID...: one real systemd-ask-password per Id, in the
# background (as systemd-cryptsetup asks); the answer to the Nth goes to
# $T/TAG.N, its PID to ASKERS[N].
ask_volumes() {
  local timeout=$1 tag=$2 i=0 id
  shift 2
  ASKERS=()
  for id in "$@"; do
    systemd-ask-password --no-tty --timeout="$timeout" --id="$id" "Passphrase for $id:" \
        > "$T/$tag.$i" 2> "$T/$tag.$i.errout" &
    ASKERS[$i]=$!; PIDS+=("$!"); i=$((i + 1))
  done
}

# serve_volumes TAG START_SECONDS ASK_SECONDS: a fresh agent (configuration $T/agent.conf,
# session keyring, cache dir $T/cache.TAG) answers one real question per volume of V, the PIN
# answered with $PIN; the answers land in $T/TAG.N, without the newline systemd-ask-password
# ends its output with. The agent keeps running as $AGENT for the caller's checks and stop.
serve_volumes() {
  local tag=$1 start=$2 asks=$3 i
  "$CRYPT_AGENT_BIN" --config "$T/agent.conf" --keyring session --cache-dir "$T/cache.$tag" --log-level debug serve \
      > "$T/serve.$tag.out" 2> "$T/serve.$tag.err" &
  AGENT=$!; PIDS+=("$AGENT")
  wait_for "$start" grep -q 'watching' "$T/serve.$tag.err" || fail "agent did not start: $(tail -5 "$T/serve.$tag.err")"
  answer_pins "$PIN"
  ask_volumes "$asks" "$tag" "cryptsetup:${V[0]}" "cryptsetup:${V[1]}" "cryptsetup:${V[2]}"
  for i in 0 1 2; do
    wait "${ASKERS[$i]}" || fail "$tag: no answer for ${V[$i]}: $(tail -5 "$T/serve.$tag.err")"
    printf '%s' "$(cat "$T/$tag.$i")" > "$T/$tag.$i.tmp" && mv "$T/$tag.$i.tmp" "$T/$tag.$i"
  done
}
