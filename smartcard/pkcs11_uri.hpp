// SPDX-License-Identifier: MIT
// RFC 7512 PKCS#11 URIs: which token and which private key answer the seed.
//
// The same URIs as `systemd-cryptenroll --pkcs11-token-uri`, `p11tool` and
// `pkcs11-tool`.  Tokens are chosen by what they say about themselves (label,
// manufacturer, serial, model), never by slot id: the same token is slot 0x0
// in opensc-pkcs11 and 0x11 through p11-kit's proxy.
//
// Pure code (no PKCS#11 calls), so it is unit-tested and fuzzable.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "smartcard/expected.hpp"

namespace ca::smartcard {

struct Pkcs11Uri {
    bool automatic = false;  // "auto": exactly one token with exactly one usable private key
    // Token attributes (CK_TOKEN_INFO, blank padding removed).
    std::optional<std::string> token, manufacturer, serial, model;
    // Object attributes.
    std::optional<std::string> object;             // CKA_LABEL
    std::optional<std::vector<unsigned char>> id;  // CKA_ID
    std::optional<std::string> type;               // only "private" is meaningful here
    std::optional<std::string> slot_description;   // matched against CK_SLOT_INFO, not an id
};

// Parses "pkcs11:token=My%20Token;id=%01" or "auto".  Refuses pin-value and
// pin-source (a PIN is asked, never configured), slot-id (not stable), a type
// other than "private", unknown attributes and bad percent-encoding.
[[nodiscard]] Expected<Pkcs11Uri> parse_pkcs11_uri(std::string_view text);

// Percent-encodes everything but RFC 3986 unreserved characters.
[[nodiscard]] std::string pkcs11_uri_escape(std::span<const unsigned char> bytes);

// The URI naming one private key: token label/manufacturer/model/serial,
// object label when set, id when set, type=private.
[[nodiscard]] std::string format_pkcs11_key_uri(const std::string& token, const std::string& manufacturer,
                                                const std::string& model, const std::string& serial,
                                                const std::string& object, std::span<const unsigned char> id);

}  // namespace ca::smartcard
