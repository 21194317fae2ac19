// SPDX-License-Identifier: MIT
// The seed store's record: which seeds (card challenges) a volume's agent
// keyslots were derived from, and at which generation.
//
// One record per volume.  It names up to three generations, because a rotation
// passes through states that must survive a crash at any instant:
//
//   {current}                      steady state
//   {current, pending}             intent: a keyslot for `pending` is about to be added
//   {current=new, previous=old}    the new keyslot is verified; the old one is retired next
//
// Every keyslot the agent creates is named here *before* it exists, so recovery
// can tell the agent's keyslots from the person's without guessing (and still
// proves ownership by opening the slot with the derived key before destroying it).
//
// Two encodings of the same record:
//  - LUKS2: a token of type "crypt-agent" in the header (JSON object; the
//    "keyslots" array binds it to the agent keyslots that exist at write time).
//  - LUKS1 (no tokens): a store file, the same JSON plus the volume's UUID on one
//    line, followed by a CRC-32 line so a torn or corrupted file is detected and
//    the previous generation of the file is used instead.
//
// Pure std: no I/O, no logging; fuzzable.  Seeds are challenges, not secrets:
// they sit in the header in the clear (the card's key is the secret).
#pragma once

#include "proto/hex.hpp"  // to_hex, from_hex (used with the records)

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.hpp"

namespace ca::proto {

inline constexpr std::string_view kSeedTokenType = "crypt-agent";
// Version 1: the APDU profile's record (written byte for byte as before).
// Version 2: a PKCS#11 key's record: "kind":"pkcs11" and "key":"<RFC 7512 URI>"
// beside the same generations; for an EC key each generation's seed is the
// ephemeral public point (04 X Y) that the card's key derives with.
inline constexpr int kSeedRecordVersion = 1;
inline constexpr int kSeedRecordVersionPkcs11 = 2;
inline constexpr std::string_view kSeedKindPkcs11 = "pkcs11";
inline constexpr std::size_t kKeyUriMaxBytes = 1024;
// The vicc profile sends the seed as one INTERNAL AUTHENTICATE: at most 240 bytes.
inline constexpr std::size_t kSeedMaxBytes = 240;
// LUKS2 has 32 keyslots, LUKS1 8.
inline constexpr int kMaxKeyslot = 31;

struct SeedGeneration {
    std::vector<unsigned char> seed;
    std::uint64_t generation = 0;
    int keyslot = -1;
    // The keyslot's PBKDF salt as the header shows it (LUKS2: base64; LUKS1: hex),
    // once the keyslot exists; empty before.  It identifies *this* keyslot even
    // after a destroy was cut short (libcryptsetup wipes the key material before
    // it rewrites the header, so a half-destroyed slot stays listed but opens with
    // nothing), without mistaking a new slot someone else added at that number.
    std::string keyslot_salt;
    friend bool operator==(const SeedGeneration&, const SeedGeneration&) = default;
};

struct SeedRecord {
    std::string profile;                     // card profile id the seed is meant for
    std::optional<SeedGeneration> current;   // the key the volume opens with now
    std::optional<SeedGeneration> pending;   // intent: keyslot being added (not trusted yet)
    std::optional<SeedGeneration> previous;  // retiring: keyslot about to be destroyed
    std::string key_uri;                     // PKCS#11 key (version 2); empty: an APDU card (version 1)
    friend bool operator==(const SeedRecord&, const SeedRecord&) = default;

    // Every generation named, current first: the candidates to offer at boot.
    [[nodiscard]] std::vector<SeedGeneration> generations() const;
    // Whether some generation names `keyslot`.
    [[nodiscard]] bool names_keyslot(int keyslot) const;
};

struct SeedCodecError {
    std::string reason;  // for an administrator; seeds are not secret but never quoted
};

template <class T>
using SeedResult = Expected<T, SeedCodecError>;

// LUKS2 token JSON.  `bound_keyslots` are the keyslots listed in the token's
// "keyslots" array: LUKS2 refuses a token bound to a keyslot that does not
// exist, so the caller passes the agent keyslots that are active right now.
[[nodiscard]] std::string encode_seed_token(const SeedRecord& record, std::span<const int> bound_keyslots);
[[nodiscard]] SeedResult<SeedRecord> decode_seed_token(std::string_view json);

// LUKS1 store file: "<json with uuid>\ncrc32 <8 hex>\n".
struct StoreRecord {
    std::string uuid;
    SeedRecord record;
};
[[nodiscard]] std::string encode_store_record(const StoreRecord& sr);
[[nodiscard]] SeedResult<StoreRecord> decode_store_record(std::string_view text);

// CRC-32 (IEEE 802.3, as zlib): detects torn writes, not tampering.
[[nodiscard]] std::uint32_t crc32(std::span<const unsigned char> bytes) noexcept;

// The "salt" of keyslot `slot` in a LUKS2 header's JSON (crypt_dump_json), if any.
[[nodiscard]] std::optional<std::string> luks2_keyslot_salt(std::string_view header_json, int slot);

}  // namespace ca::proto
