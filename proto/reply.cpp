// SPDX-License-Identifier: MIT
#include "proto/reply.hpp"

#include <cstring>
#include <optional>

namespace ca::proto {

const char* to_string(ReplyError e) noexcept {
    switch (e) {
    case ReplyError::no_candidates: return "no candidates";
    case ReplyError::empty_candidate: return "an empty candidate";
    case ReplyError::nul_in_candidate: return "a candidate contains a NUL byte";
    case ReplyError::too_large: return "the reply would exceed 2049 bytes";
    }
    return "unknown";
}

namespace {
std::optional<ReplyError> check(const Secret& c) {
    if (c.empty()) return ReplyError::empty_candidate;
    if (c.contains_byte(0)) return ReplyError::nul_in_candidate;
    return std::nullopt;
}
}  // namespace

std::size_t candidates_that_fit(std::span<const Secret* const> candidates) noexcept {
    std::size_t total = 1, n = 0;  // the leading '+'
    for (const Secret* c : candidates) {
        if (check(*c)) break;
        const std::size_t add = c->size() + (n == 0 ? 0 : 1);
        if (total + add > kReplyMaxSize) break;
        total += add;
        ++n;
    }
    return n;
}

namespace {
Expected<std::size_t, ReplyError> reply_size(std::span<const Secret* const> candidates) {
    if (candidates.empty()) return unexpected(ReplyError::no_candidates);
    std::size_t total = 1;
    for (const Secret* c : candidates) {
        if (auto e = check(*c)) return unexpected(*e);
        total += c->size();
    }
    total += candidates.size() - 1;
    if (total > kReplyMaxSize) return unexpected(ReplyError::too_large);
    return total;
}
void write_reply(std::span<const Secret* const> candidates, unsigned char* p) {
    *p++ = '+';
    for (std::size_t i = 0; i < candidates.size(); ++i) {
        if (i != 0) *p++ = 0;
        std::memcpy(p, candidates[i]->data(), candidates[i]->size());
        p += candidates[i]->size();
    }
}
}  // namespace

Expected<Secret, ReplyError> encode_reply(std::span<const Secret* const> candidates) {
    auto total = reply_size(candidates);
    if (!total) return unexpected(total.error());
    Secret out(*total);
    write_reply(candidates, out.data());
    return out;
}

Expected<std::size_t, ReplyError> encode_reply_into(std::span<const Secret* const> candidates,
                                                    std::span<unsigned char> out) {
    auto total = reply_size(candidates);
    if (!total) return unexpected(total.error());
    if (out.size() < *total) return unexpected(ReplyError::too_large);
    write_reply(candidates, out.data());
    return *total;
}

Expected<DecodedReply, ReplyError> decode_reply(std::span<const unsigned char> d) {
    if (d.empty()) return unexpected(ReplyError::no_candidates);
    if (d.size() > kReplyMaxSize) return unexpected(ReplyError::too_large);
    if (d[0] == '-' && d.size() == 1) return DecodedReply{true, 0};
    if (d[0] != '+') return unexpected(ReplyError::no_candidates);
    auto body = d.subspan(1);
    if (!body.empty() && body.back() == 0) body = body.first(body.size() - 1);
    if (body.empty()) return unexpected(ReplyError::empty_candidate);
    DecodedReply r;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= body.size(); ++i) {
        if (i == body.size() || body[i] == 0) {
            if (i == start) return unexpected(ReplyError::empty_candidate);
            ++r.count;
            start = i + 1;
        }
    }
    return r;
}

}  // namespace ca::proto
