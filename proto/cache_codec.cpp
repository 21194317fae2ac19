// SPDX-License-Identifier: MIT
#include "proto/cache_codec.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <tuple>

#include "proto/hex.hpp"

namespace ca::proto {

const char* to_string(Origin o) noexcept {
    switch (o) {
    case Origin::put: return "put";
    case Origin::harvested: return "typed";
    case Origin::card: return "card";
    }
    return "unknown";
}

const char* to_string(CacheCodecError e) noexcept {
    switch (e) {
    case CacheCodecError::truncated: return "truncated";
    case CacheCodecError::bad_magic: return "not a crypt-agent cache (bad magic)";
    case CacheCodecError::too_many: return "too many entries";
    case CacheCodecError::too_large: return "too large";
    case CacheCodecError::bad_value: return "invalid value";
    case CacheCodecError::trailing_bytes: return "trailing bytes";
    }
    return "unknown";
}

namespace {

constexpr unsigned char kMagic[4] = {'C', 'A', 'C', '3'};
constexpr unsigned char kMagicV2[4] = {'C', 'A', 'C', '2'};
// How version 2 kept a card's responses: as candidates restricted to these pseudo-Ids.
constexpr std::string_view kLegacyResponse = "crypt-agent:card-response:";
constexpr std::string_view kLegacyNext = "crypt-agent:card-next:";

// Writes into a Secret of exactly the size computed first, so no secret byte
// ever sits in an unlocked, growable buffer.
struct Writer {
    unsigned char* p;
    void bytes(const void* d, std::size_t n) {
        if (n) std::memcpy(p, d, n);
        p += n;
    }
    template <class Int>
    void num(Int v) {
        for (std::size_t i = 0; i < sizeof(Int); ++i)
            *p++ = static_cast<unsigned char>(static_cast<std::uint64_t>(v) >> (8 * i));
    }
};

struct Reader {
    std::span<const unsigned char> d;
    std::size_t pos = 0;
    bool take(std::size_t n, const unsigned char*& out) {
        if (d.size() - pos < n) return false;
        out = d.data() + pos;
        pos += n;
        return true;
    }
    template <class Int>
    bool num(Int& v) {
        const unsigned char* b;
        if (!take(sizeof(Int), b)) return false;
        std::uint64_t x = 0;
        for (std::size_t i = 0; i < sizeof(Int); ++i) x |= static_cast<std::uint64_t>(b[i]) << (8 * i);
        v = static_cast<Int>(x);
        return true;
    }
};

std::size_t patterns_size(const std::vector<std::string>& l) {
    std::size_t n = 4;
    for (const auto& s : l) n += 2 + s.size();
    return n;
}

constexpr std::size_t kHeaderSize = 4 + 8 + 8 + 4 + 4;  // with the card section's count

std::size_t response_size(const CardResponse& r) { return 1 + 2 + r.seed.size() + 4 + r.response.size(); }

// A version 2 candidate that held a card response: moved into the card section.  Anything
// malformed is dropped (it could never answer a question either).
bool take_legacy_response(CachedCandidate& c, std::vector<CardResponse>& out) {
    if (c.patterns.size() != 1) return false;
    const std::string& key = c.patterns[0];
    const bool next = key.rfind(kLegacyNext, 0) == 0;
    if (!next && key.rfind(kLegacyResponse, 0) != 0) return false;
    auto seed = from_hex(std::string_view(key).substr(next ? kLegacyNext.size() : kLegacyResponse.size()));
    auto response = secret_from_hex(c.value.bytes());
    if (seed && !seed->empty() && seed->size() <= kCacheMaxSeed && response && !response->empty() &&
        response->size() <= kCacheMaxResponse && out.size() < kCacheMaxCardResponses)
        out.push_back(
            {next ? CardResponse::Kind::next : CardResponse::Kind::current, std::move(*seed), std::move(*response)});
    return true;
}

// A candidate without its learning lists (their two counts included).
std::size_t fixed_size(const CachedCandidate& c) {
    return 4 + c.value.size() + 1 + 1 + 8 + patterns_size(c.patterns) + 4 + 4;
}

}  // namespace

std::uint64_t id_hash(std::string_view id) noexcept {
    return siphash24(0x63612d6964686173ULL /* "ca-idhas" */, 0x682d76312d6b6579ULL /* "h-v1-key" */,
                     std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(id.data()), id.size()));
}

Expected<Secret, CacheCodecError> encode_cache(const CachePayload& p, CacheFit* fit_out) {
    if (p.candidates.size() > kCacheMaxCandidates) return unexpected(CacheCodecError::too_many);
    const std::size_t n = p.candidates.size();
    for (const auto& c : p.candidates) {
        if (c.value.empty()) return unexpected(CacheCodecError::bad_value);
        if (c.patterns.size() > kCacheMaxListEntries) return unexpected(CacheCodecError::too_many);
        for (const auto& s : c.patterns)
            if (s.size() > UINT16_MAX) return unexpected(CacheCodecError::too_large);
    }
    if (p.card_responses.size() > kCacheMaxCardResponses) return unexpected(CacheCodecError::too_many);
    for (const auto& r : p.card_responses) {
        if (r.seed.empty() || r.response.empty() ||
            (r.kind != CardResponse::Kind::current && r.kind != CardResponse::Kind::next))
            return unexpected(CacheCodecError::bad_value);
        if (r.seed.size() > kCacheMaxSeed || r.response.size() > kCacheMaxResponse)
            return unexpected(CacheCodecError::too_large);
    }
    CacheFit fit;
    // Which candidates to keep: the most valuable first (one that opened a volume, one a person
    // typed, then the newest), as long as they fit without any learning.
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    auto rank = [&](std::size_t i) {
        const auto& c = p.candidates[i];
        return std::make_tuple(c.opened, c.origin == Origin::harvested, c.added_us);
    };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return rank(a) > rank(b); });
    std::vector<bool> keep(n, false);
    std::vector<std::size_t> n_rejected(n, 0), n_sent(n, 0);
    std::size_t total = kHeaderSize;
    for (auto i : order) {
        const auto sz = fixed_size(p.candidates[i]);
        if (total + sz <= kCachePayloadMax) {
            keep[i] = true;
            total += sz;
        } else {
            ++fit.candidates_left_out;
        }
    }
    // Then the card's responses, the fresh seed's first (without it `finish` needs the card).
    std::vector<bool> keep_response(p.card_responses.size(), false);
    for (auto kind : {CardResponse::Kind::next, CardResponse::Kind::current}) {
        for (std::size_t i = 0; i < p.card_responses.size(); ++i) {
            if (p.card_responses[i].kind != kind) continue;
            const auto sz = response_size(p.card_responses[i]);
            if (total + sz <= kCachePayloadMax) {
                keep_response[i] = true;
                total += sz;
            } else {
                ++fit.card_responses_left_out;
            }
        }
    }
    // Then what was learnt, in the same order: rejections (never offer a wrong key again),
    // then sends not yet judged.
    for (auto* counts : {&n_rejected, &n_sent}) {
        for (auto i : order) {
            const auto& c = p.candidates[i];
            const auto& list = counts == &n_rejected ? c.rejected_by : c.sent_to;
            const std::size_t want = list.size();
            if (!keep[i]) continue;
            const std::size_t room = (kCachePayloadMax - total) / 8;
            const std::size_t take = std::min({want, kCacheMaxIdHashes, room});
            (*counts)[i] = take;
            total += 8 * take;
            (counts == &n_rejected ? fit.rejections_left_out : fit.sends_left_out) += want - take;
        }
    }
    for (std::size_t i = 0; i < n; ++i)
        if (!keep[i]) {
            fit.rejections_left_out += p.candidates[i].rejected_by.size();
            fit.sends_left_out += p.candidates[i].sent_to.size();
        }
    if (fit_out != nullptr) *fit_out = fit;
    Secret out(total);
    Writer w{out.data()};
    w.bytes(kMagic, 4);
    w.num(p.created_us);
    w.num(p.expires_us);
    w.num(static_cast<std::uint32_t>(n - fit.candidates_left_out));
    for (std::size_t i = 0; i < n; ++i) {  // in their own order: the encoding stays canonical
        if (!keep[i]) continue;
        const auto& c = p.candidates[i];
        w.num(static_cast<std::uint32_t>(c.value.size()));
        w.bytes(c.value.data(), c.value.size());
        w.num(static_cast<std::uint8_t>(c.origin));
        w.num(static_cast<std::uint8_t>(c.opened ? 1 : 0));
        w.num(c.added_us);
        w.num(static_cast<std::uint32_t>(c.patterns.size()));
        for (const auto& s : c.patterns) {
            w.num(static_cast<std::uint16_t>(s.size()));
            w.bytes(s.data(), s.size());
        }
        w.num(static_cast<std::uint32_t>(n_sent[i]));
        for (std::size_t k = 0; k < n_sent[i]; ++k) w.num(c.sent_to[k]);
        w.num(static_cast<std::uint32_t>(n_rejected[i]));
        for (std::size_t k = 0; k < n_rejected[i]; ++k) w.num(c.rejected_by[k]);
    }
    w.num(static_cast<std::uint32_t>(p.card_responses.size() - fit.card_responses_left_out));
    for (std::size_t i = 0; i < p.card_responses.size(); ++i) {
        if (!keep_response[i]) continue;
        const auto& r = p.card_responses[i];
        w.num(static_cast<std::uint8_t>(r.kind));
        w.num(static_cast<std::uint16_t>(r.seed.size()));
        w.bytes(r.seed.data(), r.seed.size());
        w.num(static_cast<std::uint32_t>(r.response.size()));
        w.bytes(r.response.data(), r.response.size());
    }
    return out;
}

Expected<CachePayload, CacheCodecError> decode_cache(std::span<const unsigned char> bytes) {
    if (bytes.size() > kCachePayloadMax) return unexpected(CacheCodecError::too_large);
    Reader r{bytes};
    const unsigned char* m;
    if (!r.take(4, m)) return unexpected(CacheCodecError::truncated);
    const bool v2 = std::memcmp(m, kMagicV2, 4) == 0;
    if (!v2 && std::memcmp(m, kMagic, 4) != 0) return unexpected(CacheCodecError::bad_magic);
    CachePayload p;
    std::uint32_t n = 0;
    if (!r.num(p.created_us) || !r.num(p.expires_us) || !r.num(n)) return unexpected(CacheCodecError::truncated);
    if (n > kCacheMaxCandidates) return unexpected(CacheCodecError::too_many);
    p.candidates.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        CachedCandidate c;
        std::uint32_t len = 0;
        const unsigned char* v;
        if (!r.num(len)) return unexpected(CacheCodecError::truncated);
        if (len == 0) return unexpected(CacheCodecError::bad_value);
        if (!r.take(len, v)) return unexpected(CacheCodecError::truncated);
        c.value = Secret::copy_of(std::span<const unsigned char>(v, len));
        std::uint8_t origin = 0, flags = 0;
        if (!r.num(origin) || !r.num(flags) || !r.num(c.added_us)) return unexpected(CacheCodecError::truncated);
        if (origin < 1 || origin > 3 || flags > 1) return unexpected(CacheCodecError::bad_value);
        c.origin = static_cast<Origin>(origin);
        c.opened = flags == 1;
        std::uint32_t count = 0;
        if (!r.num(count)) return unexpected(CacheCodecError::truncated);
        if (count > kCacheMaxListEntries) return unexpected(CacheCodecError::too_many);
        for (std::uint32_t j = 0; j < count; ++j) {
            std::uint16_t sl = 0;
            const unsigned char* s;
            if (!r.num(sl) || !r.take(sl, s)) return unexpected(CacheCodecError::truncated);
            c.patterns.emplace_back(reinterpret_cast<const char*>(s), sl);
        }
        for (auto* l : {&c.sent_to, &c.rejected_by}) {
            if (!r.num(count)) return unexpected(CacheCodecError::truncated);
            if (count > kCacheMaxIdHashes) return unexpected(CacheCodecError::too_many);
            for (std::uint32_t j = 0; j < count; ++j) {
                std::uint64_t h = 0;
                if (!r.num(h)) return unexpected(CacheCodecError::truncated);
                l->push_back(h);
            }
        }
        if (v2 && take_legacy_response(c, p.card_responses)) continue;
        p.candidates.push_back(std::move(c));
    }
    if (!v2) {
        std::uint32_t m_count = 0;
        if (!r.num(m_count)) return unexpected(CacheCodecError::truncated);
        if (m_count > kCacheMaxCardResponses) return unexpected(CacheCodecError::too_many);
        p.card_responses.reserve(m_count);
        for (std::uint32_t i = 0; i < m_count; ++i) {
            CardResponse cr;
            std::uint8_t kind = 0;
            std::uint16_t seed_len = 0;
            std::uint32_t len = 0;
            const unsigned char* b;
            if (!r.num(kind) || !r.num(seed_len)) return unexpected(CacheCodecError::truncated);
            if (kind < 1 || kind > 2 || seed_len == 0) return unexpected(CacheCodecError::bad_value);
            if (seed_len > kCacheMaxSeed) return unexpected(CacheCodecError::too_large);
            if (!r.take(seed_len, b)) return unexpected(CacheCodecError::truncated);
            cr.kind = static_cast<CardResponse::Kind>(kind);
            cr.seed.assign(b, b + seed_len);
            if (!r.num(len)) return unexpected(CacheCodecError::truncated);
            if (len == 0) return unexpected(CacheCodecError::bad_value);
            if (len > kCacheMaxResponse) return unexpected(CacheCodecError::too_large);
            if (!r.take(len, b)) return unexpected(CacheCodecError::truncated);
            cr.response = Secret::copy_of(std::span<const unsigned char>(b, len));
            p.card_responses.push_back(std::move(cr));
        }
    }
    if (r.pos != bytes.size()) return unexpected(CacheCodecError::trailing_bytes);
    return p;
}

}  // namespace ca::proto
