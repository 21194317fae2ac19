// SPDX-License-Identifier: MIT
// libFuzzer target: the cache payload decoder, and encode(decode(x)) for what it
// accepts.  The encoding is canonical (fixed-width fields, no padding, no
// trailing bytes), so a version 3 payload it accepts must re-encode to the same
// bytes; a version 2 one (read, never written) re-encodes as 3 to the same content.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "proto/cache_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const unsigned char> in(data, size);
    auto p = ca::proto::decode_cache(in);
    if (!p) return 0;
    const bool v3 = size >= 4 && std::memcmp(data, "CAC3", 4) == 0;
    ca::proto::CacheFit fit;
    auto again = ca::proto::encode_cache(*p, &fit);
    if (!again) std::abort();
    if (v3 && (again->size() != size || std::memcmp(again->data(), data, size) != 0)) std::abort();
    if (!fit.everything()) return 0;  // a version 2 payload moved into version 3 may need more room
    auto twice = ca::proto::decode_cache(again->bytes());
    if (!twice || twice->candidates.size() != p->candidates.size() ||
        twice->card_responses.size() != p->card_responses.size())
        std::abort();
    for (std::size_t i = 0; i < p->card_responses.size(); ++i) {
        const auto &a = p->card_responses[i], &b = twice->card_responses[i];
        if (a.kind != b.kind || a.seed != b.seed || !a.response.equals(b.response)) std::abort();
    }
    for (std::size_t i = 0; i < p->candidates.size(); ++i) {
        const auto &a = p->candidates[i], &b = twice->candidates[i];
        if (!a.value.equals(b.value) || a.origin != b.origin || a.opened != b.opened || a.added_us != b.added_us ||
            a.patterns != b.patterns || a.sent_to != b.sent_to || a.rejected_by != b.rejected_by)
            std::abort();
    }
    return 0;
}
