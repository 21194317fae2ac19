#!/bin/bash
# SPDX-License-Identifier: MIT
# Prints the Debian mirror this machine's apt uses for its own release: the URIs of the
# deb822 paragraph (sources.list.d/*.sources) or the one-line entry (sources.list, *.list)
# whose suite is VERSION_CODENAME. Nothing printed when there is none. Used where a tree is
# made with mmdebstrap, so it comes from where this machine gets its packages.
set -euo pipefail
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
for f in /etc/apt/sources.list.d/*.sources; do
  [ -e "$f" ] || continue
  awk -v want="$codename" '
    function flush() {
      if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") && uris != "") { split(uris, u, " "); print u[1] }
      types = suites = uris = "" }
    /^[ \t]*$/ { flush(); next }
    /^Types:/  { sub(/^Types:[ \t]*/, "");  types = $0 }
    /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
    /^URIs:/   { sub(/^URIs:[ \t]*/, "");   uris = $0 }
    /^Enabled:[ \t]*no/ { types = "" }
    END { flush() }' "$f"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -e "$f" ] || continue
  awk -v want="$codename" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == want) print $i }' "$f"
done
