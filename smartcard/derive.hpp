// SPDX-License-Identifier: MIT
// Per-volume passphrases from a card's response.
//
// The card holds a key no APDU can read; it answers a challenge (the seed)
// with a deterministic response.  Each volume's passphrase is
//
//     OKM  = HKDF-SHA256(IKM  = response,
//                        salt = seed,
//                        info = "luks-sc-agent-v1" || uuid,   32 bytes)
//     pass = lowercase hex of OKM                             (64 ASCII chars)
//
// Byte layout of info: the 16 ASCII bytes of the label "luks-sc-agent-v1",
// immediately followed by the volume's LUKS UUID as ASCII text in its
// canonical 36-character form (8-4-4-4-12 with hyphens), with A-F lowercased,
// no separator and no terminating NUL.  libcryptsetup's crypt_get_uuid()
// already returns that form; lowercasing here means a UUID copied from blkid
// output in upper case derives the same key.
//
// Lowercase hex is printable and never contains NUL, which ask-password
// replies (NUL-separated candidates) and LUKS passphrases both need.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string_view>

#include "proto/secret.hpp"
#include "smartcard/expected.hpp"

namespace ca::smartcard {

inline constexpr std::string_view kDeriveLabel = "luks-sc-agent-v1";
inline constexpr std::size_t kDerivedKeyBytes = 32;

// Raw RFC 5869 HKDF-SHA256 (extract then expand) into locked memory.
// Throws std::runtime_error only if OpenSSL itself fails (out of memory):
// there is no input for which it fails.
[[nodiscard]] proto::Secret hkdf_sha256(std::span<const unsigned char> ikm, std::span<const unsigned char> salt,
                                        std::span<const unsigned char> info, std::size_t length);

// The info bytes for one volume: label || lowercased uuid (see above).
[[nodiscard]] std::string volume_info(std::string_view volume_uuid);

// The passphrase for one volume, as 64 lowercase hex characters in a Secret.
// Throws only as hkdf_sha256 does.
[[nodiscard]] proto::Secret derive_volume_key(const proto::Secret& response, std::span<const unsigned char> seed,
                                              std::string_view volume_uuid);

// How LUKS code gets a card response without knowing PC/SC: give it a seed,
// get the card's response (or an Error saying why not: no card, PIN refused,
// watchdog...).  The smartcard Session provides one; tests can wrap anything.
using ChallengeFn = std::function<Expected<proto::Secret>(std::span<const unsigned char> seed)>;

}  // namespace ca::smartcard
