// Hexadecimal text for seeds, salts, ATRs and APDUs (never for secrets in logs).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ca::proto {

[[nodiscard]] std::string to_hex(std::span<const unsigned char> bytes, bool upper = false);

// Even count of hex digits, either case.  With `separators`, spaces and colons between
// digits are skipped ("3B 8F 80", "3b:8f"), as people write ATRs and AIDs.
[[nodiscard]] std::optional<std::vector<unsigned char>> from_hex(std::string_view text, bool separators = false);

}  // namespace ca::proto
