// SPDX-License-Identifier: MIT
// libFuzzer target: the cache payload decoder, and encode(decode(x)) for what it
// accepts.  The encoding is canonical (fixed-width fields, no padding, no
// trailing bytes), so a payload it accepts must re-encode to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "proto/cache_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const unsigned char> in(data, size);
    auto p = ca::proto::decode_cache(in);
    if (!p) return 0;
    auto again = ca::proto::encode_cache(*p);
    if (!again || again->size() != size || std::memcmp(again->data(), data, size) != 0) std::abort();
    auto twice = ca::proto::decode_cache(again->bytes());
    if (!twice || twice->candidates.size() != p->candidates.size()) std::abort();
    for (std::size_t i = 0; i < p->candidates.size(); ++i) {
        const auto &a = p->candidates[i], &b = twice->candidates[i];
        if (!a.value.equals(b.value) || a.origin != b.origin || a.opened != b.opened ||
            a.added_us != b.added_us || a.patterns != b.patterns || a.sent_to != b.sent_to ||
            a.rejected_by != b.rejected_by)
            std::abort();
    }
    return 0;
}
