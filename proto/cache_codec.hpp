// SPDX-License-Identifier: MIT
// The boot-scoped cache payload: what one agent instance hands to the next
// (initramfs -> real root) through the kernel keyring or a tmpfs file.
//
// It carries the candidates themselves plus what this boot has learnt about them:
// which Ids they may answer, which Ids they were sent to, which Ids rejected them,
// and whether any volume accepted them.  The whole encoding is a Secret.
//
// Bounded by construction: the Ids learnt from are kept as 64-bit hashes (id_hash), at most
// kCacheMaxIdHashes per list, and the encoder fits the payload into kCachePayloadMax whatever
// it is given: it leaves out first what was sent but not judged, then rejections, then whole
// candidates (the least valuable first), and says what it left out.  A cache that grew with
// the number of volumes or the length of their Ids used to stop being stored at all.
//
// Binary layout (little-endian), version 3:
//   "CAC3" u64 created_us u64 expires_us u32 n  then n times:
//   u32 len, bytes | u8 origin | u8 flags | u64 added_us |
//   patterns: u32 count, then u16 len + bytes | sent_to, rejected_by: u32 count, then u64 each.
//   Then the card's responses: u32 m, then m times: u8 kind | u16 len + seed | u32 len + response.
// Version 2 ("CAC2", written by the previous release) is read too: it has no card section and
// kept the card's responses as candidates restricted to the pseudo-Ids
// "crypt-agent:card-response:<hex seed>" / "crypt-agent:card-next:<hex seed>" with the
// response as hex text.  The decoder moves those into `card_responses`: an initramfs of the
// previous release hands its cache to a root of this one within the same boot, and without
// them `finish` would need the card (and its PIN) again to rotate.  Only ever written as 3.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.hpp"
#include "proto/secret.hpp"

namespace ca::proto {

// The kernel caps a "user" key's payload at 32767 bytes.
inline constexpr std::size_t kCachePayloadMax = 32767;
inline constexpr std::size_t kCacheMaxCandidates = 64;
inline constexpr std::size_t kCacheMaxListEntries = 256;  // patterns per candidate
inline constexpr std::size_t kCacheMaxIdHashes = 256;     // per learning list
// Card responses: one per seed generation of each card volume, plus the fresh seed's.
inline constexpr std::size_t kCacheMaxCardResponses = 64;
inline constexpr std::size_t kCacheMaxSeed = 1024;      // an EC key's seed is a point: still small
inline constexpr std::size_t kCacheMaxResponse = 4096;  // RSA-4096 signs 512 bytes

// The hash an Id is learnt under.  SipHash-2-4 under a fixed key: every instance of the boot
// (initramfs, real root, a restart) must agree, and Ids are not secret.
[[nodiscard]] std::uint64_t id_hash(std::string_view id) noexcept;

enum class Origin : std::uint8_t {
    put = 1,        // `crypt-agent cache put`
    harvested = 2,  // taken from systemd's "cryptsetup" keyring entry (typed by a person)
    card = 3,       // derived from a smartcard response
};
[[nodiscard]] const char* to_string(Origin o) noexcept;

struct CachedCandidate {
    Secret value;
    Origin origin = Origin::put;
    bool opened = false;                     // some volume accepted it this boot
    std::uint64_t added_us = 0;              // CLOCK_BOOTTIME when it joined the cache
    std::vector<std::string> patterns;       // Id globs it may answer; empty = the agent's own patterns
    std::vector<std::uint64_t> sent_to;      // id_hash of the Ids it was sent to, not yet judged
    std::vector<std::uint64_t> rejected_by;  // id_hash of the Ids that asked again after it was sent: wrong there
};

// A smartcard's response to one seed, kept for this boot: the next phase derives its volumes'
// keys without the card (and without a second PIN), and `finish` rotates to the fresh seed.
struct CardResponse {
    enum class Kind : std::uint8_t {
        current = 1,  // to a seed a volume uses now
        next = 2,     // to the fresh seed `finish` rotates to
    };
    Kind kind = Kind::current;
    std::vector<unsigned char> seed;  // the challenge: not secret
    Secret response;
};

struct CachePayload {
    std::uint64_t created_us = 0;  // CLOCK_BOOTTIME
    std::uint64_t expires_us = 0;  // CLOCK_BOOTTIME; the hard upper bound of the cache
    std::vector<CachedCandidate> candidates;
    std::vector<CardResponse> card_responses;  // not candidates: never offered to a question
};

enum class CacheCodecError { truncated, bad_magic, too_many, too_large, bad_value, trailing_bytes };
[[nodiscard]] const char* to_string(CacheCodecError e) noexcept;

// What encode_cache left out to stay within kCachePayloadMax.
struct CacheFit {
    std::size_t candidates_left_out = 0;
    std::size_t card_responses_left_out = 0;
    std::size_t rejections_left_out = 0;
    std::size_t sends_left_out = 0;
    [[nodiscard]] bool everything() const noexcept {
        return candidates_left_out == 0 && card_responses_left_out == 0 && rejections_left_out == 0 &&
               sends_left_out == 0;
    }
};

// Always within kCachePayloadMax (see above; `fit` says what did not fit): the candidates
// first, then the card's responses, then rejections, then sends.  Errors only for a payload
// no agent makes: too many candidates or card responses, an empty value or response, a
// pattern over 65535 bytes, a seed or response over its bound.
[[nodiscard]] Expected<Secret, CacheCodecError> encode_cache(const CachePayload& p, CacheFit* fit = nullptr);
[[nodiscard]] Expected<CachePayload, CacheCodecError> decode_cache(std::span<const unsigned char> bytes);

}  // namespace ca::proto
