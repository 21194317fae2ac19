// SPDX-License-Identifier: MIT
// Encoder of the datagram an agent sends to an asker's socket.
//
// "+" followed by one or more candidates separated by NUL answers the question
// (systemd splits on NUL and tries each, in order); "-" cancels it.  systemd 252
// receives into a 2049-byte buffer and truncates anything longer, which would
// silently corrupt the last candidate, so we refuse to build such a datagram.
#pragma once

#include <cstddef>
#include <span>

#include "proto/result.hpp"
#include "proto/secret.hpp"

namespace ca::proto {

inline constexpr std::size_t kReplyMaxSize = 2049;

enum class ReplyError {
    no_candidates,
    empty_candidate,   // an empty string cannot be told apart from a separator
    nul_in_candidate,  // a NUL would split one candidate into two
    too_large,         // over kReplyMaxSize
};
[[nodiscard]] const char* to_string(ReplyError e) noexcept;

// "+c1\0c2\0...cn" in locked memory.
[[nodiscard]] Expected<Secret, ReplyError> encode_reply(std::span<const Secret* const> candidates);

// The same into `out` (at least kReplyMaxSize bytes, e.g. one locked buffer reused for every
// reply); returns the datagram's length.  Same errors as encode_reply.
[[nodiscard]] Expected<std::size_t, ReplyError> encode_reply_into(std::span<const Secret* const> candidates,
                                                                  std::span<unsigned char> out);

// How many of `candidates`, taken in order, fit in one reply (0 if even the first
// does not, or the first is invalid).  Candidates with NUL or empty ones stop the count.
[[nodiscard]] std::size_t candidates_that_fit(std::span<const Secret* const> candidates) noexcept;

// The one-byte cancel datagram "-".
[[nodiscard]] inline constexpr char cancel_reply() noexcept { return '-'; }

// Parses a reply as systemd does (for tests and the bench): '+' then NUL-separated
// candidates with an optional trailing NUL; '-' is a cancel.  Returns false if malformed.
struct DecodedReply {
    bool cancel = false;
    std::size_t count = 0;
};
[[nodiscard]] Expected<DecodedReply, ReplyError> decode_reply(std::span<const unsigned char> datagram);

}  // namespace ca::proto
