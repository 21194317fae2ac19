// SPDX-License-Identifier: MIT
// Hexadecimal text for seeds, salts, ATRs and APDUs (never for secrets in logs).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/secret.hpp"

namespace ca::proto {

[[nodiscard]] std::string to_hex(std::span<const unsigned char> bytes, bool upper = false);

// Even count of hex digits, either case.  With `separators`, spaces and colons between
// digits are skipped ("3B 8F 80", "3b:8f"), as people write ATRs and AIDs.
[[nodiscard]] std::optional<std::vector<unsigned char>> from_hex(std::string_view text, bool separators = false);

// The same for secret bytes, kept in locked memory: lower-case hex text of a secret (a
// derived passphrase, a card response in the boot cache), and such text back to bytes
// (either case, no separators).
[[nodiscard]] Secret to_hex_secret(std::span<const unsigned char> bytes);
[[nodiscard]] std::optional<Secret> secret_from_hex(std::span<const unsigned char> text);

}  // namespace ca::proto
