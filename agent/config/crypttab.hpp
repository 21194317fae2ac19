// SPDX-License-Identifier: MIT
// /etc/crypttab as the agent reads it: which block devices its lines name,
// spelled as systemd-cryptsetup resolves them (so that "cryptsetup:" + the
// result is the Id the volume's question carries).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ca::agent {

// UUID=, PARTUUID=, LABEL= and PARTLABEL= to their /dev/disk/by-* links; any
// other spelling unchanged.
[[nodiscard]] std::string resolve_source(const std::string& source);

// The resolved source device of every line (comments and short lines skipped),
// in file order.  A missing or unreadable file gives nothing.
[[nodiscard]] std::vector<std::string> crypttab_sources(const std::filesystem::path& path);

}  // namespace ca::agent
