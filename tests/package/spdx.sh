#!/bin/bash
# SPDX-License-Identifier: MIT
# Every source file of the project (C++, C, Python, shell, CMake, systemd
# units and drop-ins, debian/rules) carries `SPDX-License-Identifier: MIT`
# in its first lines; test data, fuzz corpora and documents do not.
#   tests/package/spdx.sh          check (test package.spdx); lists the files without it
#   tests/package/spdx.sh --fix    add the line where it is missing (after a #! line)
# Files are those git tracks plus new ones it does not ignore; not symlinks,
# not .ci/ (the CI entry point).
set -euo pipefail
SRC=${CRYPT_AGENT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$SRC"
command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1 || { echo "SKIP: not a git checkout"; exit 77; }
fix=0; [ "${1:-}" = --fix ] && fix=1
tag='SPDX-License-Identifier: MIT'

# The comment leader of a source file, or nothing for a file that is no source.
leader() {
    case $1 in
        tests/fuzz/corpus/*|*/corpus/*|*/data/*|*/testdata/*|.ci/*) return ;;
        *.cpp|*.hpp|*.c|*.h) echo '//' ;;
        *.py|*.sh|*.sh.in|*.cmake|*/CMakeLists.txt|CMakeLists.txt) echo '#' ;;
        *.service|*.service.in|*.path|*.socket|*.timer|*.target) echo '#' ;;
        units/*.conf|dracut/*.conf|dracut/*.conf.in|*/systemd/system/*.conf) echo '#' ;;
        debian/rules) echo '#' ;;
        *) # Scripts without a suffix (the boot tests' guest tools).
           [ -f "$1" ] && head -c 2 "$1" | grep -q '^#!' && echo '#' ;;
    esac
}

missing=()
while IFS= read -r -d '' f; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue   # sed -i would replace a symlink by a copy
    l=$(leader "$f" || true); [ -n "$l" ] || continue
    head -n 3 "$f" | grep -qF "$tag" && continue
    if [ $fix = 1 ]; then
        if head -c 2 "$f" | grep -q '^#!'; then
            sed -i "1a $l $tag" "$f"
        else
            sed -i "1i $l $tag" "$f"
        fi
        echo "added: $f"
    else
        missing+=("$f")
    fi
done < <(git ls-files -z --cached --others --exclude-standard)

if [ ${#missing[@]} -gt 0 ]; then
    echo "FAIL ${#missing[@]} source files lack '$tag' in their first 3 lines (tests/package/spdx.sh --fix adds it):"
    printf '     %s\n' "${missing[@]}"
    exit 1
fi
[ $fix = 1 ] || echo "ok   every source file carries '$tag'"
