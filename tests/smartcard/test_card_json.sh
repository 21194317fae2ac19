#!/bin/bash
# SPDX-License-Identifier: MIT
# card status --json and card list --json (issue 16) on real cards:
#   the virtual card (vicc in a private pcscd): status names the reader, the card, its ATR,
#   the application and the PIN tries left, without spending one; with the card pulled, the
#   reader is empty; card list shows the reader;
#   a SoftHSM2 token (private SOFTHSM2_CONF): card list --login shows the token and its RSA
#   key with its URI; card status with card-uri shows the key the URI chooses.
# Each output is parsed with Python's json and compared with the known state; --json=pretty
# parses equal to --json=short; the PIN never appears; card derive refuses --json.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 missing" >&2; exit 77; }

# json_check FILE PYTHON-EXPR: the expression over `d` (the parsed FILE) must be true.
json_check() {
  python3 - "$1" "$2" <<'PY' || fail "$(basename "$1"): $2 is false: $(cat "$1")"
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval('(' + sys.argv[2] + ')') else 1)
PY
}
# same_doc A B: both files parse to the same JSON value (pretty == short).
same_doc() {
  python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 1)' "$1" "$2" \
    || fail "$1 and $2 differ"
  [ "$(wc -l < "$1")" = 1 ] || fail "$1 (short) is not one line"
  [ "$(wc -l < "$2")" -gt 3 ] || fail "$2 (pretty) is not indented"
}

# --- the virtual card -------------------------------------------------------------------------
fixture start
card status --json=short > "$T/status.json" 2> "$T/status.err" || fail "card status --json: $(cat "$T/status.err")"
card status --json=pretty > "$T/status.pretty" 2>> "$T/status.err" || fail "card status --json=pretty"
same_doc "$T/status.json" "$T/status.pretty"
R="Virtual PCD 00 00"
json_check "$T/status.json" "d['backend'] == 'pcsc' and d['profile'] == 'iso7816-internal-authenticate'
  and '$R' in [r['name'] for r in d['readers']]"
# reader(d): the fixture's reader in the document (vpcd offers more slots, empty).
RD="[r for r in d['readers'] if r['name'] == '$R'][0]"
json_check "$T/status.json" "$RD == {'name': '$R', 'answers': True, 'card_present': True, 'error': None,
  'atr': $RD['atr'], 'application': 'no AID configured', 'pin': '3 tries left'}"
json_check "$T/status.json" "$RD['atr'].upper().startswith('3B')
  and all(not r['card_present'] and r['atr'] is None for r in d['readers'] if r['name'] != '$R')"
[ "$(verifies_with_pin)" = 0 ] || fail "card status --json sent a PIN"
ok "card status --json: reader, card, ATR, application, 3 tries left, no PIN spent"

card list --json > "$T/list-pcsc.json" 2> "$T/list-pcsc.err" || fail "card list --json: $(cat "$T/list-pcsc.err")"
json_check "$T/list-pcsc.json" "d['pcsc']['available'] is True and d['pcsc']['error'] is None and '$R' in d['pcsc']['readers']
  and isinstance(d['tokens'], list)"
ok "card list --json: pcscd available, the reader"

fixture pull
card status --json > "$T/pulled.json" 2> "$T/pulled.err" || fail "card status --json, card out: $(cat "$T/pulled.err")"
json_check "$T/pulled.json" "$RD == {'name': '$R', 'answers': True, 'card_present': False, 'error': None,
  'atr': None, 'application': None, 'pin': None}"
ok "card status --json with the card pulled: the reader is empty"

set +e
card derive --json --card-seed-file "$T/seed.hex" --uuid "${UUIDS[0]}" > "$T/derive.out" 2> "$T/derive.err"; rc=$?
set -e
[ $rc = 2 ] && [ ! -s "$T/derive.out" ] && grep -q "^crypt-agent card derive: .*--json" "$T/derive.err" \
  || fail "card derive --json: exit $rc: $(cat "$T/derive.err")"
set +e
card status --json=table > "$T/bad.out" 2> "$T/bad.err"; rc=$?
set -e
[ $rc = 2 ] && [ ! -s "$T/bad.out" ] && grep -q "^crypt-agent card status: --json: unknown mode 'table'" "$T/bad.err" \
  || fail "card status --json=table: exit $rc: $(cat "$T/bad.err")"
ok "card derive refuses --json; a bad mode is named"

# --- a SoftHSM2 token -------------------------------------------------------------------------------
SOFTHSM=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do [ -f "$m" ] && SOFTHSM=$m && break; done
if [ -z "$SOFTHSM" ] || ! command -v softhsm2-util >/dev/null || ! command -v pkcs11-tool >/dev/null; then
  echo "SKIP: SoftHSM2 (packages softhsm2, opensc) missing: the PKCS#11 half did not run" >&2; exit 77
fi
export SOFTHSM2_CONF="$T/softhsm2.conf"
mkdir -p "$T/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
  "$T/tokens" > "$SOFTHSM2_CONF"
TOKEN="json token"
softhsm2-util --init-token --free --label "$TOKEN" --so-pin 87654321 --pin "$PIN" > "$T/init.log" 2>&1 || fail "init token"
pkcs11-tool --module "$SOFTHSM" --token-label "$TOKEN" --login --pin "$PIN" --keypairgen --key-type rsa:2048 \
  --id 01 --label seedkey > "$T/keygen.log" 2>&1 || fail "keygen"
URI="pkcs11:token=json%20token;id=%01"

card list --json --card-module "$SOFTHSM" > "$T/nologin.json" 2> "$T/nologin.err" || fail "card list: $(cat "$T/nologin.err")"
json_check "$T/nologin.json" "d['module'] == '$SOFTHSM' and [t['label'] for t in d['tokens']] == ['$TOKEN']"
json_check "$T/nologin.json" "d['tokens'][0]['login_required'] is True and d['tokens'][0]['pin'] == 'ok'
  and d['tokens'][0]['pin_pad'] is False and d['tokens'][0]['manufacturer'].startswith('SoftHSM')"

: > "$T/prompts"
answer_pins "$PIN"
card list --login --json=short --card-module "$SOFTHSM" > "$T/list.json" 2> "$T/list.err" || fail "card list --login: $(cat "$T/list.err")"
answer_pins "$PIN"
card list --login --json=pretty --card-module "$SOFTHSM" > "$T/list.pretty" 2>> "$T/list.err" || fail "card list --login pretty"
same_doc "$T/list.json" "$T/list.pretty"
json_check "$T/list.json" "len(d['tokens']) == 1 and d['tokens'][0]['keys_need_login'] in (True, False) and d['tokens'][0]['note'] is None"
json_check "$T/list.json" "[(k['label'], k['id'], k['type'], k['bits'], k['usable'], k['why_not']) for k in d['tokens'][0]['keys']]
  == [('seedkey', '01', 'RSA-2048', 2048, True, None)]"
json_check "$T/list.json" "d['tokens'][0]['keys'][0]['uri'].startswith('pkcs11:') and 'token=json%20token' in d['tokens'][0]['keys'][0]['uri']
  and 'id=%01' in d['tokens'][0]['keys'][0]['uri'] and 'type=private' in d['tokens'][0]['keys'][0]['uri']"
ok "card list --login --json: the token and its RSA-2048 key with its URI"

card status --json --card-module "$SOFTHSM" --card-uri "$URI" > "$T/p11status.json" 2> "$T/p11status.err" \
  || fail "card status with card-uri: $(cat "$T/p11status.err")"
json_check "$T/p11status.json" "d['backend'] == 'pkcs11' and d['card_uri'] == '$URI' and d['error'] is None
  and d['key']['type'] == 'RSA-2048' and d['key']['usable'] is True and [t['label'] for t in d['tokens']] == ['$TOKEN']"
set +e
card status --json --card-module "$SOFTHSM" --card-uri "pkcs11:token=json%20token;id=%09" > "$T/nokey.json" 2> "$T/nokey.err"; rc=$?
set -e
[ $rc = 1 ] || fail "card status of a missing key: exit $rc"
json_check "$T/nokey.json" "d['key'] is None and isinstance(d['error'], str) and d['error'] != ''"
ok "card status --json with card-uri: the key it chooses; a missing key is an error, exit 1"

for f in "$T"/*.json "$T"/*.pretty; do
  grep -qF -- "$PIN" "$f" && fail "the PIN appears in $f"
done
no_secrets_in_logs "$PIN"
