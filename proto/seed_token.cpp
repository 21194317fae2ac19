// SPDX-License-Identifier: MIT
#include "proto/seed_token.hpp"

#include <array>
#include <charconv>
#include <map>
#include <memory>
#include <variant>

namespace ca::proto {
namespace {

// ---- a small JSON reader --------------------------------------------------
// libcryptsetup hands back the token as json-c re-serialised it (spacing and key
// order are json-c's), so we parse real JSON rather than match our own output.
// Only what a token can hold: objects, arrays, strings, integers, literals.
// Depth is bounded so hostile headers cannot exhaust the stack.

struct JsonValue;
using JsonObject = std::map<std::string, JsonValue, std::less<>>;
using JsonArray = std::vector<JsonValue>;
struct JsonNumber {
    std::string text;
};
struct JsonLiteral {
    std::string text;
};  // true, false, null
struct JsonValue {
    std::variant<std::string, JsonNumber, JsonLiteral, std::shared_ptr<JsonObject>, std::shared_ptr<JsonArray>> v;
};

constexpr int kMaxDepth = 16;
constexpr std::size_t kMaxSaltText = 128;

class JsonReader {
public:
    explicit JsonReader(std::string_view text) : s_(text) {}

    SeedResult<JsonValue> document() {
        auto v = value(0);
        if (!v) return v;
        skip_space();
        if (pos_ != s_.size()) return fail("trailing bytes after the JSON value");
        return v;
    }

private:
    static SeedResult<JsonValue> fail(std::string reason) { return unexpected(SeedCodecError{std::move(reason)}); }

    void skip_space() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r'))
            ++pos_;
    }

    bool eat(char c) {
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }

    SeedResult<JsonValue> value(int depth) {
        if (depth > kMaxDepth) return fail("JSON nested too deeply");
        skip_space();
        if (pos_ >= s_.size()) return fail("JSON ends early");
        const char c = s_[pos_];
        if (c == '{') return object(depth);
        if (c == '[') return array(depth);
        if (c == '"') {
            auto str = string();
            if (!str) return fail(str.error().reason);
            return JsonValue{std::move(*str)};
        }
        if (c == '-' || (c >= '0' && c <= '9')) return number();
        for (std::string_view lit : {"true", "false", "null"}) {
            if (s_.substr(pos_, lit.size()) == lit) {
                pos_ += lit.size();
                return JsonValue{JsonLiteral{std::string(lit)}};
            }
        }
        return fail("unexpected character in JSON");
    }

    SeedResult<JsonValue> object(int depth) {
        ++pos_;
        auto obj = std::make_shared<JsonObject>();
        if (eat('}')) return JsonValue{obj};
        do {
            skip_space();
            if (pos_ >= s_.size() || s_[pos_] != '"') return fail("JSON object key expected");
            auto key = string();
            if (!key) return fail(key.error().reason);
            if (!eat(':')) return fail("':' expected in JSON object");
            auto v = value(depth + 1);
            if (!v) return v;
            // A duplicated key could make two readers see two records: refuse it.
            if (!obj->emplace(std::move(*key), std::move(*v)).second) return fail("duplicate key in JSON object");
        } while (eat(','));
        if (!eat('}')) return fail("'}' expected in JSON object");
        return JsonValue{obj};
    }

    SeedResult<JsonValue> array(int depth) {
        ++pos_;
        auto arr = std::make_shared<JsonArray>();
        if (eat(']')) return JsonValue{arr};
        do {
            auto v = value(depth + 1);
            if (!v) return v;
            arr->push_back(std::move(*v));
        } while (eat(','));
        if (!eat(']')) return fail("']' expected in JSON array");
        return JsonValue{arr};
    }

    SeedResult<std::string> string() {
        ++pos_;  // opening quote
        std::string out;
        while (pos_ < s_.size()) {
            const char c = s_[pos_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20)
                return unexpected(SeedCodecError{"control character in JSON string"});
            if (c != '\\') {
                out.push_back(c);
                continue;
            }
            if (pos_ >= s_.size()) break;
            const char e = s_[pos_++];
            switch (e) {
            case '"':
            case '\\':
            case '/': out.push_back(e); break;
            case 'b': out.push_back('\b'); break;
            case 'f': out.push_back('\f'); break;
            case 'n': out.push_back('\n'); break;
            case 'r': out.push_back('\r'); break;
            case 't': out.push_back('\t'); break;
            case 'u': {
                // json-c escapes only control characters this way; keep ASCII, refuse the rest.
                if (s_.size() - pos_ < 4) return unexpected(SeedCodecError{"short \\u escape"});
                unsigned code = 0;
                auto [p, ec] = std::from_chars(s_.data() + pos_, s_.data() + pos_ + 4, code, 16);
                if (ec != std::errc{} || p != s_.data() + pos_ + 4 || code >= 0x80)
                    return unexpected(SeedCodecError{"unsupported \\u escape in JSON string"});
                out.push_back(static_cast<char>(code));
                pos_ += 4;
                break;
            }
            default: return unexpected(SeedCodecError{"bad escape in JSON string"});
            }
        }
        return unexpected(SeedCodecError{"unterminated JSON string"});
    }

    SeedResult<JsonValue> number() {
        const std::size_t start = pos_;
        if (s_[pos_] == '-') ++pos_;
        while (pos_ < s_.size() && ((s_[pos_] >= '0' && s_[pos_] <= '9') || s_[pos_] == '.' || s_[pos_] == 'e' ||
                                    s_[pos_] == 'E' || s_[pos_] == '+' || s_[pos_] == '-'))
            ++pos_;
        return JsonValue{JsonNumber{std::string(s_.substr(start, pos_ - start))}};
    }

    std::string_view s_;
    std::size_t pos_ = 0;
};

// ---- typed access -----------------------------------------------------------

const JsonValue* member(const JsonObject& o, std::string_view key) {
    auto it = o.find(key);
    return it == o.end() ? nullptr : &it->second;
}

const std::string* as_string(const JsonValue* v) { return v ? std::get_if<std::string>(&v->v) : nullptr; }

const JsonObject* as_object(const JsonValue* v) {
    if (!v) return nullptr;
    const auto* p = std::get_if<std::shared_ptr<JsonObject>>(&v->v);
    return p ? p->get() : nullptr;
}

std::optional<std::uint64_t> as_uint(const JsonValue* v) {
    if (!v) return std::nullopt;
    const auto* n = std::get_if<JsonNumber>(&v->v);
    if (!n) return std::nullopt;
    std::uint64_t out = 0;
    auto [p, ec] = std::from_chars(n->text.data(), n->text.data() + n->text.size(), out);
    if (ec != std::errc{} || p != n->text.data() + n->text.size()) return std::nullopt;
    return out;
}

SeedResult<std::optional<SeedGeneration>> generation_from(const JsonObject& root, std::string_view key) {
    const JsonValue* v = member(root, key);
    if (!v) return std::optional<SeedGeneration>{};
    const JsonObject* o = as_object(v);
    auto bad = [&](std::string_view what) {
        return unexpected(SeedCodecError{std::string(key) + ": " + std::string(what)});
    };
    if (!o) return bad("not an object");
    SeedGeneration g;
    const std::string* seed_hex = as_string(member(*o, "seed"));
    if (!seed_hex) return bad("missing seed");
    auto seed = from_hex(*seed_hex);
    if (!seed || seed->empty() || seed->size() > kSeedMaxBytes) return bad("seed is not 1 to 240 bytes of hex");
    g.seed = std::move(*seed);
    auto gen = as_uint(member(*o, "generation"));
    if (!gen) return bad("generation is not an unsigned integer");
    g.generation = *gen;
    auto slot = as_uint(member(*o, "keyslot"));
    if (!slot || *slot > static_cast<std::uint64_t>(kMaxKeyslot)) return bad("keyslot is not 0 to 31");
    g.keyslot = static_cast<int>(*slot);
    if (const JsonValue* salt = member(*o, "keyslot_salt")) {
        const std::string* text = as_string(salt);
        if (!text || text->empty() || text->size() > kMaxSaltText) return bad("keyslot_salt is not a short string");
        for (char c : *text)
            if (c <= ' ' || c > '~') return bad("keyslot_salt is not printable");
        g.keyslot_salt = *text;
    }
    return std::optional<SeedGeneration>(std::move(g));
}

SeedResult<SeedRecord> record_from(const JsonObject& root) {
    auto bad = [](std::string why) { return unexpected(SeedCodecError{std::move(why)}); };
    const std::string* type = as_string(member(root, "type"));
    if (!type || *type != kSeedTokenType) return bad("not a crypt-agent record");
    auto version = as_uint(member(root, "version"));
    if (!version || (*version != kSeedRecordVersion && *version != kSeedRecordVersionPkcs11))
        return bad("unsupported record version");
    SeedRecord r;
    if (*version == kSeedRecordVersionPkcs11) {
        const std::string* kind = as_string(member(root, "kind"));
        if (!kind || *kind != kSeedKindPkcs11) return bad("version 2 record without kind \"pkcs11\"");
        const std::string* key = as_string(member(root, "key"));
        if (!key || key->empty() || key->size() > kKeyUriMaxBytes || key->rfind("pkcs11:", 0) != 0)
            return bad("version 2 record without a pkcs11: key URI");
        r.key_uri = *key;
    }
    if (const std::string* profile = as_string(member(root, "profile"))) r.profile = *profile;
    else return bad("missing profile");
    auto cur = generation_from(root, "current");
    if (!cur) return unexpected(cur.error());
    auto pen = generation_from(root, "pending");
    if (!pen) return unexpected(pen.error());
    auto pre = generation_from(root, "previous");
    if (!pre) return unexpected(pre.error());
    r.current = std::move(*cur);
    r.pending = std::move(*pen);
    r.previous = std::move(*pre);
    // Two generations on one keyslot would let recovery destroy the slot that
    // the other generation still needs.
    const auto gens = r.generations();
    for (std::size_t i = 0; i < gens.size(); ++i)
        for (std::size_t j = i + 1; j < gens.size(); ++j)
            if (gens[i].keyslot == gens[j].keyslot) return bad("two generations name one keyslot");
    if (r.pending && r.previous) return bad("pending and previous at once");
    return r;
}

// ---- writing ------------------------------------------------------------------

void append_quoted(std::string& out, std::string_view s) {
    out.push_back('"');
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (static_cast<unsigned char>(c) < 0x20) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\u00";
            out.push_back(hex[(c >> 4) & 0xf]);
            out.push_back(hex[c & 0xf]);
        } else out.push_back(c);
    }
    out.push_back('"');
}

void append_generation(std::string& out, std::string_view key, const SeedGeneration& g) {
    out += ",";
    append_quoted(out, key);
    out += ":{\"seed\":";
    append_quoted(out, to_hex(g.seed));
    out += ",\"generation\":" + std::to_string(g.generation);
    out += ",\"keyslot\":" + std::to_string(g.keyslot);
    if (!g.keyslot_salt.empty()) {
        out += ",\"keyslot_salt\":";
        append_quoted(out, g.keyslot_salt);
    }
    out += "}";
}

void append_body(std::string& out, const SeedRecord& r) {
    if (r.key_uri.empty()) {
        out += ",\"version\":" + std::to_string(kSeedRecordVersion);
    } else {
        out += ",\"version\":" + std::to_string(kSeedRecordVersionPkcs11) + ",\"kind\":";
        append_quoted(out, kSeedKindPkcs11);
        out += ",\"key\":";
        append_quoted(out, r.key_uri);
    }
    out += ",\"profile\":";
    append_quoted(out, r.profile);
    if (r.current) append_generation(out, "current", *r.current);
    if (r.pending) append_generation(out, "pending", *r.pending);
    if (r.previous) append_generation(out, "previous", *r.previous);
}

std::span<const unsigned char> as_bytes(std::string_view s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

}  // namespace

std::vector<SeedGeneration> SeedRecord::generations() const {
    std::vector<SeedGeneration> out;
    for (const auto* g : {&current, &previous, &pending})
        if (*g) out.push_back(**g);
    return out;
}

bool SeedRecord::names_keyslot(int keyslot) const {
    for (const auto* g : {&current, &previous, &pending})
        if (*g && (*g)->keyslot == keyslot) return true;
    return false;
}

std::string encode_seed_token(const SeedRecord& record, std::span<const int> bound_keyslots) {
    std::string out = "{\"type\":";
    append_quoted(out, kSeedTokenType);
    out += ",\"keyslots\":[";
    for (std::size_t i = 0; i < bound_keyslots.size(); ++i) {
        if (i) out += ",";
        // LUKS2 wants keyslot numbers as strings here.
        append_quoted(out, std::to_string(bound_keyslots[i]));
    }
    out += "]";
    append_body(out, record);
    out += "}";
    return out;
}

SeedResult<SeedRecord> decode_seed_token(std::string_view json) {
    auto doc = JsonReader(json).document();
    if (!doc) return unexpected(doc.error());
    const JsonObject* root = as_object(&*doc);
    if (!root) return unexpected(SeedCodecError{"token is not a JSON object"});
    return record_from(*root);
}

std::string encode_store_record(const StoreRecord& sr) {
    std::string line = "{\"type\":";
    append_quoted(line, kSeedTokenType);
    line += ",\"uuid\":";
    append_quoted(line, sr.uuid);
    append_body(line, sr.record);
    line += "}\n";
    static constexpr char hex[] = "0123456789abcdef";
    const std::uint32_t crc = crc32(as_bytes(line));
    std::string sum = "crc32 ";
    for (int shift = 28; shift >= 0; shift -= 4) sum.push_back(hex[(crc >> shift) & 0xf]);
    return line + sum + "\n";
}

SeedResult<StoreRecord> decode_store_record(std::string_view text) {
    auto bad = [](std::string why) { return unexpected(SeedCodecError{std::move(why)}); };
    const std::size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return bad("store record has no checksum line");
    const std::string_view line = text.substr(0, nl + 1);
    const std::string_view rest = text.substr(nl + 1);
    constexpr std::string_view prefix = "crc32 ";
    if (rest.size() != prefix.size() + 9 || rest.substr(0, prefix.size()) != prefix || rest.back() != '\n')
        return bad("store record checksum line is malformed (torn write?)");
    std::uint32_t want = 0;
    const std::string_view hex = rest.substr(prefix.size(), 8);
    // Lowercase only, as written: one spelling per value, so a flipped bit shows.
    for (char c : hex)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return bad("store record checksum is not lowercase hex");
    auto [p, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), want, 16);
    if (ec != std::errc{} || p != hex.data() + hex.size()) return bad("store record checksum is not hex");
    if (crc32(as_bytes(line)) != want) return bad("store record checksum mismatch (corrupted)");

    auto doc = JsonReader(line.substr(0, line.size() - 1)).document();
    if (!doc) return unexpected(doc.error());
    const JsonObject* root = as_object(&*doc);
    if (!root) return bad("store record is not a JSON object");
    StoreRecord out;
    const std::string* uuid = as_string(member(*root, "uuid"));
    if (!uuid || uuid->empty()) return bad("store record has no uuid");
    out.uuid = *uuid;
    auto rec = record_from(*root);
    if (!rec) return unexpected(rec.error());
    out.record = std::move(*rec);
    return out;
}

std::optional<std::string> luks2_keyslot_salt(std::string_view header_json, int slot) {
    auto doc = JsonReader(header_json).document();
    if (!doc) return std::nullopt;
    const JsonObject* root = as_object(&*doc);
    const JsonObject* keyslots = root ? as_object(member(*root, "keyslots")) : nullptr;
    const JsonObject* ks = keyslots ? as_object(member(*keyslots, std::to_string(slot))) : nullptr;
    const JsonObject* kdf = ks ? as_object(member(*ks, "kdf")) : nullptr;
    const std::string* salt = kdf ? as_string(member(*kdf, "salt")) : nullptr;
    if (!salt || salt->empty()) return std::nullopt;
    return *salt;
}

std::uint32_t crc32(std::span<const unsigned char> bytes) noexcept {
    static constexpr auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    std::uint32_t c = 0xFFFFFFFFu;
    for (unsigned char b : bytes) c = table[(c ^ b) & 0xffu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

}  // namespace ca::proto
