#include "proto/cache_codec.hpp"

#include <cstring>

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

constexpr unsigned char kMagic[4] = {'C', 'A', 'C', '1'};

// Writes into a Secret of exactly the size computed first, so no secret byte
// ever sits in an unlocked, growable buffer.
struct Writer {
    unsigned char* p;
    void bytes(const void* d, std::size_t n) { if (n) std::memcpy(p, d, n); p += n; }
    template <class Int> void num(Int v) {
        for (std::size_t i = 0; i < sizeof(Int); ++i) *p++ = static_cast<unsigned char>(static_cast<std::uint64_t>(v) >> (8 * i));
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
    template <class Int> bool num(Int& v) {
        const unsigned char* b;
        if (!take(sizeof(Int), b)) return false;
        std::uint64_t x = 0;
        for (std::size_t i = 0; i < sizeof(Int); ++i) x |= static_cast<std::uint64_t>(b[i]) << (8 * i);
        v = static_cast<Int>(x);
        return true;
    }
};

std::size_t list_size(const std::vector<std::string>& l) {
    std::size_t n = 4;
    for (const auto& s : l) n += 2 + s.size();
    return n;
}

}  // namespace

Expected<Secret, CacheCodecError> encode_cache(const CachePayload& p) {
    if (p.candidates.size() > kCacheMaxCandidates) return unexpected(CacheCodecError::too_many);
    std::size_t total = 4 + 8 + 8 + 4;
    for (const auto& c : p.candidates) {
        if (c.value.empty()) return unexpected(CacheCodecError::bad_value);
        for (const auto* l : {&c.patterns, &c.sent_to, &c.rejected_by}) {
            if (l->size() > kCacheMaxListEntries) return unexpected(CacheCodecError::too_many);
            for (const auto& s : *l)
                if (s.size() > UINT16_MAX) return unexpected(CacheCodecError::too_large);
        }
        total += 4 + c.value.size() + 1 + 1 + 8 + list_size(c.patterns) + list_size(c.sent_to) +
                 list_size(c.rejected_by);
    }
    if (total > kCachePayloadMax) return unexpected(CacheCodecError::too_large);
    Secret out(total);
    Writer w{out.data()};
    w.bytes(kMagic, 4);
    w.num(p.created_us);
    w.num(p.expires_us);
    w.num(static_cast<std::uint32_t>(p.candidates.size()));
    for (const auto& c : p.candidates) {
        w.num(static_cast<std::uint32_t>(c.value.size()));
        w.bytes(c.value.data(), c.value.size());
        w.num(static_cast<std::uint8_t>(c.origin));
        w.num(static_cast<std::uint8_t>(c.opened ? 1 : 0));
        w.num(c.added_us);
        for (const auto* l : {&c.patterns, &c.sent_to, &c.rejected_by}) {
            w.num(static_cast<std::uint32_t>(l->size()));
            for (const auto& s : *l) {
                w.num(static_cast<std::uint16_t>(s.size()));
                w.bytes(s.data(), s.size());
            }
        }
    }
    return out;
}

Expected<CachePayload, CacheCodecError> decode_cache(std::span<const unsigned char> bytes) {
    if (bytes.size() > kCachePayloadMax) return unexpected(CacheCodecError::too_large);
    Reader r{bytes};
    const unsigned char* m;
    if (!r.take(4, m)) return unexpected(CacheCodecError::truncated);
    if (std::memcmp(m, kMagic, 4) != 0) return unexpected(CacheCodecError::bad_magic);
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
        for (auto* l : {&c.patterns, &c.sent_to, &c.rejected_by}) {
            std::uint32_t count = 0;
            if (!r.num(count)) return unexpected(CacheCodecError::truncated);
            if (count > kCacheMaxListEntries) return unexpected(CacheCodecError::too_many);
            for (std::uint32_t j = 0; j < count; ++j) {
                std::uint16_t sl = 0;
                const unsigned char* s;
                if (!r.num(sl) || !r.take(sl, s)) return unexpected(CacheCodecError::truncated);
                l->emplace_back(reinterpret_cast<const char*>(s), sl);
            }
        }
        p.candidates.push_back(std::move(c));
    }
    if (r.pos != bytes.size()) return unexpected(CacheCodecError::trailing_bytes);
    return p;
}

}  // namespace ca::proto
