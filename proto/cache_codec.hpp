// The boot-scoped cache payload: what one agent instance hands to the next
// (initramfs -> real root) through the kernel keyring or a tmpfs file.
//
// It carries the candidates themselves plus what this boot has learnt about them:
// which Ids they may answer, which Ids they were sent to, which Ids rejected them,
// and whether any volume accepted them.  The whole encoding is a Secret.
//
// Binary layout (little-endian), version 1:
//   "CAC1" u64 created_us u64 expires_us u32 n  then n times:
//   u32 len, bytes | u8 origin | u8 flags | u64 added_us |
//   3 string lists (patterns, sent_to, rejected_by), each u32 count, then u16 len + bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "proto/result.hpp"
#include "proto/secret.hpp"

namespace ca::proto {

// The kernel caps a "user" key's payload at 32767 bytes.
inline constexpr std::size_t kCachePayloadMax = 32767;
inline constexpr std::size_t kCacheMaxCandidates = 64;
inline constexpr std::size_t kCacheMaxListEntries = 256;

enum class Origin : std::uint8_t {
    put = 1,        // `crypt-agent cache put`
    harvested = 2,  // taken from systemd's "cryptsetup" keyring entry (typed by a person)
    card = 3,       // derived from a smartcard response
};
[[nodiscard]] const char* to_string(Origin o) noexcept;

struct CachedCandidate {
    Secret value;
    Origin origin = Origin::put;
    bool opened = false;                   // some volume accepted it this boot
    std::uint64_t added_us = 0;            // CLOCK_BOOTTIME when it joined the cache
    std::vector<std::string> patterns;     // Id globs it may answer; empty = the agent's own patterns
    std::vector<std::string> sent_to;      // Ids it was sent to
    std::vector<std::string> rejected_by;  // Ids that asked again after it was sent: wrong there
};

struct CachePayload {
    std::uint64_t created_us = 0;  // CLOCK_BOOTTIME
    std::uint64_t expires_us = 0;  // CLOCK_BOOTTIME; the hard upper bound of the cache
    std::vector<CachedCandidate> candidates;
};

enum class CacheCodecError { truncated, bad_magic, too_many, too_large, bad_value, trailing_bytes };
[[nodiscard]] const char* to_string(CacheCodecError e) noexcept;

[[nodiscard]] Expected<Secret, CacheCodecError> encode_cache(const CachePayload& p);
[[nodiscard]] Expected<CachePayload, CacheCodecError> decode_cache(std::span<const unsigned char> bytes);

}  // namespace ca::proto
