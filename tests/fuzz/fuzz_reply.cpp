// SPDX-License-Identifier: MIT
// libFuzzer target: the reply encoder and decoder.  The first input byte is a
// separator; the rest, split on it, are the candidates (so a candidate may hold
// NUL or be empty when the separator is another byte).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "proto/reply.hpp"

using ca::proto::Secret;

namespace {
std::vector<Secret> split(const std::uint8_t* d, std::size_t n, std::uint8_t sep) {
    std::vector<Secret> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= n; ++i)
        if (i == n || d[i] == sep) {
            out.push_back(Secret::copy_of(std::span<const unsigned char>(d + start, i - start)));
            start = i + 1;
        }
    return out;
}

bool valid(const Secret& c) { return !c.empty() && !c.contains_byte(0); }

// The datagram must be '+' then the candidates joined by NUL, nothing else.
void check_encoding(const Secret& out, std::span<const Secret* const> cs) {
    if (out.size() > ca::proto::kReplyMaxSize || out.size() == 0 || out.data()[0] != '+') std::abort();
    std::size_t pos = 1;
    for (std::size_t i = 0; i < cs.size(); ++i) {
        if (i != 0 && out.data()[pos++] != 0) std::abort();
        if (std::memcmp(out.data() + pos, cs[i]->data(), cs[i]->size()) != 0) std::abort();
        pos += cs[i]->size();
    }
    if (pos != out.size()) std::abort();
    auto back = ca::proto::decode_reply(out.bytes());
    if (!back || back->cancel || back->count != cs.size()) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    (void)ca::proto::decode_reply(std::span<const unsigned char>(data, size));
    if (size == 0) return 0;
    const auto candidates = split(data + 1, size - 1, data[0]);
    std::vector<const Secret*> ptrs;
    for (const auto& c : candidates) ptrs.push_back(&c);

    std::size_t total = 1, first_invalid = ptrs.size();
    for (std::size_t i = 0; i < ptrs.size(); ++i) {
        total += ptrs[i]->size() + (i ? 1 : 0);
        if (first_invalid == ptrs.size() && !valid(*ptrs[i])) first_invalid = i;
    }
    auto all = ca::proto::encode_reply(ptrs);
    if (all) check_encoding(*all, ptrs);
    // It fails exactly when a candidate is invalid or the datagram would not fit.
    if (bool(all) != (first_invalid == ptrs.size() && total <= ca::proto::kReplyMaxSize)) std::abort();

    // candidates_that_fit: the longest valid prefix that fits, and it does encode.
    const std::size_t n = ca::proto::candidates_that_fit(ptrs);
    if (n > first_invalid) std::abort();
    if (n > 0) {
        auto some = ca::proto::encode_reply(std::span(ptrs).first(n));
        if (!some) std::abort();
        check_encoding(*some, std::span(ptrs).first(n));
        if (n < first_invalid && some->size() + 1 + ptrs[n]->size() <= ca::proto::kReplyMaxSize) std::abort();
    } else if (first_invalid > 0 && 1 + ptrs[0]->size() <= ca::proto::kReplyMaxSize) {
        std::abort();
    }
    return 0;
}
