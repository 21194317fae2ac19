// SPDX-License-Identifier: MIT
#define BOOST_TEST_MODULE seed_token
#include <boost/test/unit_test.hpp>

#include <cstdio>

#include "proto/seed_token.hpp"

using namespace ca::proto;

namespace {
SeedRecord sample() {
    SeedRecord r;
    r.profile = "vicc-aes128";
    r.current = SeedGeneration{std::vector<unsigned char>(32, 0x11), 7, 1,
                               "P+z+hoTGs1N2qMBOQ2CTBVw6v1Fw9ovbYxHys1rRXR8="};
    r.previous = SeedGeneration{std::vector<unsigned char>(32, 0x22), 6, 2, "00ff"};
    return r;
}
}  // namespace

BOOST_AUTO_TEST_CASE(token_round_trip_keeps_every_generation) {
    const SeedRecord r = sample();
    const int bound[] = {1, 2};
    const std::string json = encode_seed_token(r, bound);
    BOOST_TEST(json.find("\"type\":\"crypt-agent\"") != std::string::npos);
    BOOST_TEST(json.find("\"keyslots\":[\"1\",\"2\"]") != std::string::npos);
    auto back = decode_seed_token(json);
    BOOST_REQUIRE(back.has_value());
    BOOST_TEST((*back == r));
    BOOST_TEST(back->generations().size() == 2u);
    BOOST_TEST(back->generations().front().generation == 7u);  // current first
}

BOOST_AUTO_TEST_CASE(token_as_json_c_reformats_it_still_parses) {
    // json-c hands tokens back with spaces and its own key order.
    const std::string json =
        "{ \"keyslots\": [ \"3\" ], \"version\": 1, \"type\": \"crypt-agent\", \"profile\": \"p\", "
        "\"current\": { \"keyslot\": 3, \"generation\": 2, \"seed\": \"00ff\" } }";
    auto r = decode_seed_token(json);
    BOOST_REQUIRE(r.has_value());
    BOOST_TEST(r->current->keyslot == 3);
    BOOST_TEST(r->current->seed.size() == 2u);
    BOOST_TEST(!r->pending.has_value());
}

BOOST_AUTO_TEST_CASE(token_refuses_what_could_mislead_recovery) {
    const char* bad[] = {
        "{\"type\":\"systemd-tpm2\",\"version\":1,\"profile\":\"p\"}",
        "{\"type\":\"crypt-agent\",\"version\":2,\"profile\":\"p\"}",
        "{\"type\":\"crypt-agent\",\"version\":1}",
        // two generations on one keyslot: recovery could destroy the live one
        "{\"type\":\"crypt-agent\",\"version\":1,\"profile\":\"p\",\"current\":{\"seed\":\"00\",\"generation\":1,"
        "\"keyslot\":1},\"previous\":{\"seed\":\"01\",\"generation\":0,\"keyslot\":1}}",
        "{\"type\":\"crypt-agent\",\"version\":1,\"profile\":\"p\",\"current\":{\"seed\":\"0\",\"generation\":1,"
        "\"keyslot\":1}}",
        "{\"type\":\"crypt-agent\",\"version\":1,\"profile\":\"p\",\"current\":{\"seed\":\"00\",\"generation\":-1,"
        "\"keyslot\":1}}",
        "{\"type\":\"crypt-agent\",\"version\":1,\"profile\":\"p\",\"current\":{\"seed\":\"00\",\"generation\":1,"
        "\"keyslot\":32}}",
        "{\"type\":\"crypt-agent\",\"type\":\"crypt-agent\",\"version\":1,\"profile\":\"p\"}",
        "{\"type\":\"crypt-agent\",\"version\":1,\"profile\":\"p\"} trailing",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        "{\"type\":\"crypt-agent\"",
        "",
    };
    for (const char* j : bad) BOOST_TEST(!decode_seed_token(j).has_value(), j);
}

BOOST_AUTO_TEST_CASE(store_record_round_trip_and_checksum) {
    StoreRecord s{"2b5c2a0e-8f36-4a5e-9d1c-0123456789ab", sample()};
    const std::string text = encode_store_record(s);
    auto back = decode_store_record(text);
    BOOST_REQUIRE(back.has_value());
    BOOST_TEST(back->uuid == s.uuid);
    BOOST_TEST((back->record == s.record));

    // Any single flipped byte is caught (CRC-32 detects every 1-byte error).
    for (std::size_t i = 0; i < text.size(); ++i) {
        std::string bad = text;
        bad[i] = static_cast<char>(bad[i] ^ 0x20);
        BOOST_TEST(!decode_store_record(bad).has_value(), "flip at " << i);
    }
    // A torn write: every proper prefix is refused.
    for (std::size_t n = 0; n < text.size(); ++n)
        BOOST_TEST(!decode_store_record(text.substr(0, n)).has_value(), "prefix " << n);
}

BOOST_AUTO_TEST_CASE(crc32_matches_the_standard_check_value) {
    const std::string s = "123456789";
    BOOST_TEST(crc32({reinterpret_cast<const unsigned char*>(s.data()), s.size()}) == 0xCBF43926u);
}

BOOST_AUTO_TEST_CASE(keyslot_salt_from_a_luks2_header) {
    // The shape of crypt_dump_json's output (trimmed).
    const std::string header =
        "{\"keyslots\":{\"0\":{\"type\":\"luks2\",\"kdf\":{\"type\":\"pbkdf2\",\"hash\":\"sha256\","
        "\"iterations\":1000,\"salt\":\"C9UJm/27hOPTf3lDeKnQNUDZcu/2sQAG91JugWVZIcY=\"}},"
        "\"1\":{\"type\":\"luks2\",\"kdf\":{\"type\":\"pbkdf2\",\"salt\":\"P+z+\"}}},\"tokens\":{}}";
    BOOST_TEST(luks2_keyslot_salt(header, 0).value() == "C9UJm/27hOPTf3lDeKnQNUDZcu/2sQAG91JugWVZIcY=");
    BOOST_TEST(luks2_keyslot_salt(header, 1).value() == "P+z+");
    BOOST_TEST(!luks2_keyslot_salt(header, 2).has_value());
    BOOST_TEST(!luks2_keyslot_salt("not json", 0).has_value());
}

BOOST_AUTO_TEST_CASE(recorded_salt_survives_both_encodings_and_is_checked) {
    SeedRecord r = sample();
    const int bound[] = {1};
    auto token = decode_seed_token(encode_seed_token(r, bound));
    BOOST_REQUIRE(token.has_value());
    BOOST_TEST(token->current->keyslot_salt == r.current->keyslot_salt);
    auto file = decode_store_record(encode_store_record({"u", r}));
    BOOST_REQUIRE(file.has_value());
    BOOST_TEST(file->record.previous->keyslot_salt == "00ff");
    // A salt with a control character or space is refused.
    BOOST_TEST(
        !decode_seed_token("{\"type\":\"crypt-agent\",\"version\":1,\"profile\":\"p\",\"current\":{\"seed\":\"00\","
                           "\"generation\":1,\"keyslot\":1,\"keyslot_salt\":\"a b\"}}")
             .has_value());
}

// Headers and store files are read before anything is unlocked and may be
// damaged or hostile: the decoders must refuse garbage without crashing, and
// whatever they accept must re-encode to the same record.  Deterministic
// mutations (byte flips, truncations, insertions) of valid encodings; run it
// under CRYPT_AGENT_SANITIZE to catch memory errors.
BOOST_AUTO_TEST_CASE(mutated_records_never_crash_and_accepted_ones_round_trip) {
    SeedRecord r = sample();
    r.previous.reset();
    r.pending = SeedGeneration{std::vector<unsigned char>(16, 0x33), 8, 4, {}};
    const int bound[] = {1};
    const std::string token = encode_seed_token(r, bound);
    const std::string store = encode_store_record({"2b5c2a0e-8f36-4a5e-9d1c-0123456789ab", r});
    std::uint64_t state = 0x9E3779B97F4A7C15ull;
    auto next = [&state] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    // JSON's structural bytes, an escape, and a NUL.
    static constexpr std::string_view kAlphabet{"{}[]\",:0\\u\0", 11};
    int accepted = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string t = (i % 2) ? token : store;
        const int edits = 1 + static_cast<int>(next() % 4);
        for (int e = 0; e < edits && !t.empty(); ++e) {
            const std::size_t at = next() % t.size();
            switch (next() % 4) {
            case 0: t[at] = static_cast<char>(next()); break;
            case 1: t.resize(at); break;
            case 2: t.insert(at, 1, kAlphabet[next() % kAlphabet.size()]); break;
            default: t.erase(at, 1); break;
            }
        }
        if (i % 2) {
            auto d = decode_seed_token(t);
            if (!d) continue;
            ++accepted;
            auto again = decode_seed_token(encode_seed_token(*d, bound));
            BOOST_REQUIRE(again.has_value());
            BOOST_TEST((*again == *d));
        } else {
            auto d = decode_store_record(t);
            if (!d) continue;
            ++accepted;
            auto again = decode_store_record(encode_store_record(*d));
            BOOST_REQUIRE(again.has_value());
            BOOST_TEST((again->record == d->record));
        }
    }
    BOOST_TEST_MESSAGE("accepted " << accepted << " of 20000 mutated inputs");
}

// Records written by the APDU profile before PKCS#11 existed: read and
// re-encoded byte for byte (a literal, not the encoder's own output).
BOOST_AUTO_TEST_CASE(apdu_records_of_version_1_reencode_byte_for_byte) {
    const std::string token =
        "{\"type\":\"crypt-agent\",\"keyslots\":[\"1\"],\"version\":1,\"profile\":\"iso7816-internal-authenticate\","
        "\"current\":{\"seed\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\",\"generation\":3,"
        "\"keyslot\":1,\"keyslot_salt\":\"c2FsdA==\"}}";
    auto r = decode_seed_token(token);
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST(r->key_uri.empty());
    const int bound[] = {1};
    BOOST_TEST(encode_seed_token(*r, bound) == token);
    const std::string store =
        "{\"type\":\"crypt-agent\",\"uuid\":\"0f6a1c2d-1111-2222-3333-444455556666\",\"version\":1,\"profile\":\"p\","
        "\"current\":{\"seed\":\"01\",\"generation\":1,\"keyslot\":2}}\n";
    const std::string file = store + "crc32 " + [&] {
        char buf[9];
        std::snprintf(buf, sizeof buf, "%08x",
                      crc32({reinterpret_cast<const unsigned char*>(store.data()), store.size()}));
        return std::string(buf);
    }() + "\n";
    auto s = decode_store_record(file);
    BOOST_TEST_REQUIRE(s.has_value());
    BOOST_TEST(encode_store_record(*s) == file);
}

BOOST_AUTO_TEST_CASE(pkcs11_records_carry_kind_and_key_uri) {
    SeedRecord r;
    r.profile = "pkcs11";
    r.key_uri = "pkcs11:token=crypt%20agent;id=%01;type=private";
    r.current = SeedGeneration{std::vector<unsigned char>(65, 0x04), 1, 1, ""};
    const int bound[] = {1};
    const std::string token = encode_seed_token(r, bound);
    BOOST_TEST(
        token.find("\"version\":2,\"kind\":\"pkcs11\",\"key\":\"pkcs11:token=crypt%20agent;id=%01;type=private\"") !=
        std::string::npos);
    auto back = decode_seed_token(token);
    BOOST_TEST_REQUIRE(back.has_value());
    BOOST_TEST((*back == r));
    auto store = decode_store_record(encode_store_record({"0f6a1c2d-1111-2222-3333-444455556666", r}));
    BOOST_TEST_REQUIRE(store.has_value());
    BOOST_TEST((store->record == r));
    // A version 2 record without its kind or key, or a version 1 reader's
    // confusion of the two, is refused.
    for (const char* j :
         {"{\"type\":\"crypt-agent\",\"version\":2,\"profile\":\"pkcs11\"}",
          "{\"type\":\"crypt-agent\",\"version\":2,\"kind\":\"pkcs11\",\"profile\":\"pkcs11\"}",
          "{\"type\":\"crypt-agent\",\"version\":2,\"kind\":\"apdu\",\"key\":\"pkcs11:\",\"profile\":\"p\"}",
          "{\"type\":\"crypt-agent\",\"version\":3,\"profile\":\"p\"}"})
        BOOST_TEST(!decode_seed_token(j).has_value(), j);
}
