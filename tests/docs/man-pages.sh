#!/bin/bash
# SPDX-License-Identifier: MIT
# docs.man-pages: the man pages are clean under `mandoc -T lint` (warnings
# included), and crypt-agent.conf(5) documents every setting: each option of
# the binary's help (global, serve and finish options; the configuration
# file takes the same names) and each name the configuration parser accepts
# (`crypt-agent config` prints every one), so a new setting cannot be added
# without its paragraph.
set -euo pipefail
skip() { echo "SKIP: $*"; exit 77; }
SRC=${CRYPT_AGENT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v mandoc >/dev/null || skip "mandoc (package mandoc) is missing"
[ -x "${CRYPT_AGENT_BIN:-}" ] || skip "crypt-agent binary ${CRYPT_AGENT_BIN:-} is not built"
fail=0
pages=("$SRC/agent/crypt-agent.8" "$SRC/agent/crypt-agent.conf.5")
if out=$(mandoc -T lint -W warning "${pages[@]}" 2>&1) && [ -z "$out" ]; then
    echo "ok   mandoc -T lint: clean"
else
    echo "FAIL mandoc -T lint:"; sed 's/^/     /' <<< "$out"; fail=1
fi

# The settings the conf page documents: the names its paragraphs start with.
documented=$(mandoc -T utf8 "$SRC/agent/crypt-agent.conf.5" | sed 's/\x1b\[[0-9;]*m//g; s/.\x08//g' |
             sed -n 's/^       \([a-z][a-z0-9-]*\) = .*/\1/p' | sort -u)
[ -n "$documented" ] || { echo "FAIL found no settings in crypt-agent.conf(5)"; exit 1; }

# Options of the help: --name, except those that are no setting.
from_help=$(for c in serve finish; do "$CRYPT_AGENT_BIN" "$c" --help 2>&1 || true; done |
            grep -oE '^ +(-[a-z], )?--[a-z][a-z0-9-]*' | sed 's/.*--//' | sort -u |
            grep -vxE 'help|version|config')
[ -n "$from_help" ] || { echo "FAIL no options in the help of serve and finish"; exit 1; }
# Every setting there is: `crypt-agent config` prints each one as "name = value".
empty=$(mktemp); trap 'rm -f "$empty"' EXIT
from_parser=$("$CRYPT_AGENT_BIN" config --config "$empty" | sed -n 's/^\([a-z][a-z0-9-]*\) = .*/\1/p' | sort -u)
[ -n "$from_parser" ] || { echo "FAIL crypt-agent config printed no settings"; exit 1; }
missing=$(comm -23 <(printf '%s\n' $from_help $from_parser | sort -u) <(printf '%s\n' "$documented"))
if [ -z "$missing" ]; then
    echo "ok   crypt-agent.conf(5) documents all $(printf '%s\n' $from_help $from_parser | sort -u | wc -l) settings"
else
    echo "FAIL crypt-agent.conf(5) lacks: $(tr '\n' ' ' <<< "$missing")"; fail=1
fi
# Every command of the usage has its paragraph in crypt-agent(8).
for c in serve list "cache put" "cache status" "cache flush" finish "card list" "card status" "card watch" "card derive" enroll rotate config; do
    grep -q "^\.B $c\b" "$SRC/agent/crypt-agent.8" || { echo "FAIL crypt-agent(8) has no paragraph for $c"; fail=1; }
done
for topic in "JSON OUTPUT" "UNITS" "INITRAMFS" "KERNEL COMMAND LINE" "EXIT STATUS" "WHEN THE CARD IS LOST"; do
    grep -q "^\.SH $topic" "$SRC/agent/crypt-agent.8" || { echo "FAIL crypt-agent(8) has no section $topic"; fail=1; }
done
# Every field of the JSON that list and cache status print is named in its JSON OUTPUT
# section (card list and card status need a card: smartcard.card_json checks those).
if command -v python3 >/dev/null; then
    jd=$(mktemp -d); trap 'rm -f "$empty"; rm -rf "$jd"' EXIT
    mkdir "$jd/ask"
    printf '[Ask]\nPID=%s\nSocket=%s/sck.doc\nAcceptCached=1\nNotAfter=0\nMessage=m\nId=cryptsetup:/dev/doc\n' $$ "$jd/ask" > "$jd/ask/ask.doc"
    printf 'not an ask file\n' > "$jd/ask/ask.bad"
    { "$CRYPT_AGENT_BIN" list --config "$empty" --ask-dir "$jd/ask" --json
      [ "$(id -u)" = 0 ] && "$CRYPT_AGENT_BIN" cache status --config "$empty" --keyring session --cache-dir "$jd/cache" --json
    } > "$jd/out.json" 2> "$jd/err" || true
    json_keys=$(python3 -c '
import json, sys
def keys(d):
    if isinstance(d, dict):
        for k, v in d.items():
            yield k
            yield from keys(v)
    elif isinstance(d, list):
        for v in d:
            yield from keys(v)
for line in open(sys.argv[1]):
    print("\n".join(sorted(set(keys(json.loads(line))))))' "$jd/out.json" | sort -u)
    section=$(sed -n '/^\.SH JSON OUTPUT/,/^\.SH [A-Z]/p' "$SRC/agent/crypt-agent.8")
    if [ -z "$json_keys" ]; then
        echo "FAIL no JSON from list/cache status: $(cat "$jd/err")"; fail=1
    else
        undocumented=$(for k in $json_keys; do grep -qE "(\\fB|\.BR? |\" )$k\b" <<< "$section" || echo "$k"; done)
        if [ -z "$undocumented" ]; then echo "ok   crypt-agent(8) names all $(wc -w <<< "$json_keys") JSON fields of list and cache status"
        else echo "FAIL crypt-agent(8) JSON OUTPUT lacks: $(tr '\n' ' ' <<< "$undocumented")"; fail=1; fi
    fi
fi
[ $fail = 0 ] && echo "ok   crypt-agent(8) covers every command, the units, the initramfs, the off switch, exit codes"
exit $fail
