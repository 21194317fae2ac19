// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>
#include "printers.hpp"

#include <algorithm>
#include <string>

#include "proto/cache_codec.hpp"
#include "proto/hex.hpp"

using namespace ca::proto;

BOOST_AUTO_TEST_SUITE(cache_codec)

BOOST_AUTO_TEST_CASE(round_trip_keeps_learning) {
    CachePayload p;
    p.created_us = 1;
    p.expires_us = 900000000;
    CachedCandidate a;
    a.value = Secret::copy_of("first passphrase");
    a.origin = Origin::harvested;
    a.opened = true;
    a.added_us = 55;
    a.sent_to = {id_hash("cryptsetup:/dev/vda2")};
    a.rejected_by = {id_hash("cryptsetup:/dev/vdb1"), id_hash("cryptsetup:/dev/vdc1")};
    CachedCandidate b;
    b.value = Secret::copy_of("card-derived");
    b.origin = Origin::card;
    b.patterns = {"cryptsetup:/dev/vdb1"};
    p.candidates.push_back(std::move(a));
    p.candidates.push_back(std::move(b));
    auto enc = encode_cache(p);
    BOOST_REQUIRE(enc);
    auto dec = decode_cache(enc->bytes());
    BOOST_REQUIRE(dec);
    BOOST_TEST(dec->expires_us == 900000000u);
    BOOST_REQUIRE(dec->candidates.size() == 2u);
    BOOST_TEST(dec->candidates[0].value.equals(p.candidates[0].value));
    BOOST_TEST(dec->candidates[0].opened);
    BOOST_TEST((dec->candidates[0].rejected_by == p.candidates[0].rejected_by));
    BOOST_TEST((dec->candidates[0].sent_to == p.candidates[0].sent_to));
    BOOST_TEST(dec->candidates[1].patterns.front() == "cryptsetup:/dev/vdb1");
    BOOST_TEST((dec->candidates[1].origin == Origin::card));
}

BOOST_AUTO_TEST_CASE(every_truncation_is_an_error_not_a_crash) {
    CachePayload p;
    p.expires_us = 10;
    CachedCandidate a;
    a.value = Secret::copy_of("x");
    a.sent_to = {id_hash("id")};
    p.candidates.push_back(std::move(a));
    auto enc = encode_cache(p);
    BOOST_REQUIRE(enc);
    for (std::size_t n = 0; n < enc->size(); ++n) BOOST_TEST(!decode_cache(enc->bytes().first(n)).has_value());
    std::vector<unsigned char> extra(enc->bytes().begin(), enc->bytes().end());
    extra.push_back(0);
    BOOST_TEST((decode_cache(extra).error() == CacheCodecError::trailing_bytes));
    extra[0] = 'X';
    BOOST_TEST((decode_cache(extra).error() == CacheCodecError::bad_magic));
}

BOOST_AUTO_TEST_CASE(limits) {
    CachePayload p;
    for (std::size_t i = 0; i <= kCacheMaxCandidates; ++i) {
        CachedCandidate c;
        c.value = Secret::copy_of("v" + std::to_string(i));
        p.candidates.push_back(std::move(c));
    }
    BOOST_TEST((encode_cache(p).error() == CacheCodecError::too_many));
    p.candidates.resize(1);
    p.candidates[0].patterns = {std::string(UINT16_MAX + 1, 'p')};
    BOOST_TEST((encode_cache(p).error() == CacheCodecError::too_large));
}

BOOST_AUTO_TEST_CASE(ids_are_hashed_stably) {
    BOOST_TEST(id_hash("cryptsetup:/dev/vda2") == id_hash(std::string("cryptsetup:/dev/vda2")));
    BOOST_TEST(id_hash("cryptsetup:/dev/vda2") != id_hash("cryptsetup:/dev/vdb2"));
}

namespace {

// `n` candidates, each sent to and rejected by `ids` Ids of `id_len` bytes (as learnt).
CachePayload learnt_payload(std::size_t n, std::size_t ids, std::size_t id_len, std::size_t value_len = 40) {
    CachePayload p;
    p.created_us = 1;
    p.expires_us = 2;
    for (std::size_t i = 0; i < n; ++i) {
        CachedCandidate c;
        std::string v(value_len, 'a');
        v += std::to_string(i);
        c.value = Secret::copy_of(v);
        c.origin = i == 0 ? Origin::harvested : Origin::put;
        c.added_us = i;
        for (std::size_t k = 0; k < ids && c.rejected_by.size() < kCacheMaxIdHashes; ++k) {
            std::string id = "cryptsetup:/dev/disk/by-id/volume-" + std::to_string(k) + "-";
            id.resize(std::max(id.size(), id_len), 'x');
            (k % 2 ? c.sent_to : c.rejected_by).push_back(id_hash(id));
        }
        p.candidates.push_back(std::move(c));
    }
    return p;
}

void check_fits_and_round_trips(const CachePayload& p, const char* what) {
    CacheFit fit;
    auto enc = encode_cache(p, &fit);
    BOOST_TEST_INFO(what);
    BOOST_REQUIRE(enc);
    BOOST_TEST(enc->size() <= kCachePayloadMax);
    auto dec = decode_cache(enc->bytes());
    BOOST_REQUIRE(dec);
    BOOST_TEST(dec->candidates.size() + fit.candidates_left_out == p.candidates.size());
    // The typed passphrase (the one thing that cannot be had again) is always kept.
    BOOST_TEST(std::any_of(dec->candidates.begin(), dec->candidates.end(),
                           [](const CachedCandidate& c) { return c.origin == Origin::harvested; }));
}

}  // namespace

// Issue 13, item 2: ~250 volumes x 2 candidates, or three 11 KB Ids, made the payload too large
// and no save succeeded again.  Ids are hashes now, and the encoder fits whatever it is given.
BOOST_AUTO_TEST_CASE(a_thousand_ids_fit) {
    auto p = learnt_payload(2, 1000, 60);
    CacheFit fit;
    auto enc = encode_cache(p, &fit);
    BOOST_REQUIRE(enc);
    BOOST_TEST(fit.candidates_left_out == 0u);
    BOOST_TEST(fit.rejections_left_out == 0u);
    auto dec = decode_cache(enc->bytes());
    BOOST_REQUIRE(dec);
    BOOST_TEST((dec->candidates[0].rejected_by == p.candidates[0].rejected_by));
    check_fits_and_round_trips(learnt_payload(kCacheMaxCandidates, 1000, 60), "64 candidates x 1000 Ids");
}

BOOST_AUTO_TEST_CASE(maximal_ids_fit) {
    // Ids as long as an ask file allows (16 KiB), learnt by every candidate: the same 8 bytes each.
    check_fits_and_round_trips(learnt_payload(3, 3, 11 * 1024), "three 11 KB Ids");
    check_fits_and_round_trips(learnt_payload(kCacheMaxCandidates, 1000, 16 * 1024), "64 x 1000 maximal Ids");
    // Patterns are kept as text (they are globs): maximal ones push candidates out, never the
    // typed one, and the payload still fits.
    auto p = learnt_payload(kCacheMaxCandidates, 256, 100, 2048);
    for (std::size_t i = 1; i < p.candidates.size(); ++i) p.candidates[i].patterns = {std::string(16 * 1024, 'p')};
    CacheFit fit;
    auto enc = encode_cache(p, &fit);
    BOOST_REQUIRE(enc);
    BOOST_TEST(enc->size() <= kCachePayloadMax);
    BOOST_TEST(fit.candidates_left_out > 0u);
    check_fits_and_round_trips(p, "64 candidates with 16 KiB patterns and 2 KiB values");
}

namespace {

CardResponse card_response(CardResponse::Kind kind, unsigned char fill, std::size_t seed_len, std::size_t len) {
    CardResponse r;
    r.kind = kind;
    r.seed.assign(seed_len, fill);
    r.response = Secret::copy_of(std::string(len, static_cast<char>('A' + fill % 26)));
    return r;
}

// A cache as the previous release (version 2) wrote it: card responses as candidates restricted
// to "crypt-agent:card-response:<hex seed>" / "crypt-agent:card-next:<hex seed>", hex values.
std::vector<unsigned char> version2(const std::vector<std::pair<std::string, std::string>>& candidates) {
    std::vector<unsigned char> out{'C', 'A', 'C', '2'};
    auto num = [&out](std::uint64_t v, std::size_t bytes) {
        for (std::size_t i = 0; i < bytes; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
    };
    num(7, 8);
    num(900, 8);
    num(candidates.size(), 4);
    for (const auto& [pattern, value] : candidates) {
        num(value.size(), 4);
        out.insert(out.end(), value.begin(), value.end());
        num(static_cast<std::uint8_t>(pattern.rfind("crypt-agent:", 0) == 0 ? Origin::card : Origin::harvested), 1);
        num(0, 1);
        num(5, 8);
        num(pattern.empty() ? 0 : 1, 4);
        if (!pattern.empty()) {
            num(pattern.size(), 2);
            out.insert(out.end(), pattern.begin(), pattern.end());
        }
        num(0, 4);
        num(0, 4);
    }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(card_responses_have_their_own_section) {
    CachePayload p;
    p.expires_us = 5;
    CachedCandidate a;
    a.value = Secret::copy_of("derived key");
    a.origin = Origin::card;
    a.patterns = {"cryptsetup:/dev/vda2"};
    p.candidates.push_back(std::move(a));
    p.card_responses.push_back(card_response(CardResponse::Kind::current, 1, 32, 256));
    p.card_responses.push_back(card_response(CardResponse::Kind::next, 2, 65, 64));
    auto enc = encode_cache(p);
    BOOST_REQUIRE(enc);
    BOOST_TEST(std::string(reinterpret_cast<const char*>(enc->data()), 4) == "CAC3");
    auto dec = decode_cache(enc->bytes());
    BOOST_REQUIRE(dec);
    BOOST_TEST(dec->candidates.size() == 1u);  // the responses are not candidates
    BOOST_REQUIRE(dec->card_responses.size() == 2u);
    for (std::size_t i = 0; i < 2; ++i) {
        BOOST_TEST((dec->card_responses[i].kind == p.card_responses[i].kind));
        BOOST_TEST((dec->card_responses[i].seed == p.card_responses[i].seed));
        BOOST_TEST(dec->card_responses[i].response.equals(p.card_responses[i].response));
    }
    for (std::size_t n = 0; n < enc->size(); ++n) BOOST_TEST(!decode_cache(enc->bytes().first(n)).has_value());
}

BOOST_AUTO_TEST_CASE(card_responses_do_not_count_against_the_candidates) {
    auto p = learnt_payload(kCacheMaxCandidates, 0, 0);
    for (unsigned char i = 0; i < kCacheMaxCardResponses; ++i)
        p.card_responses.push_back(card_response(CardResponse::Kind::current, i, 32, 64));
    CacheFit fit;
    auto enc = encode_cache(p, &fit);
    BOOST_REQUIRE(enc);
    BOOST_TEST(fit.everything());
    auto dec = decode_cache(enc->bytes());
    BOOST_REQUIRE(dec);
    BOOST_TEST(dec->candidates.size() == kCacheMaxCandidates);
    BOOST_TEST(dec->card_responses.size() == kCacheMaxCardResponses);
}

BOOST_AUTO_TEST_CASE(card_responses_fit_after_candidates_and_the_fresh_seed_first) {
    // 64 RSA-4096 responses do not fit beside 64 large candidates: responses go, the fresh
    // seed's (what `finish` rotates to) last, and the payload still fits.
    auto p = learnt_payload(kCacheMaxCandidates, 0, 0, 200);
    for (unsigned char i = 0; i < kCacheMaxCardResponses - 1; ++i)
        p.card_responses.push_back(card_response(CardResponse::Kind::current, i, 32, 512));
    p.card_responses.push_back(card_response(CardResponse::Kind::next, 99, 32, 512));
    CacheFit fit;
    auto enc = encode_cache(p, &fit);
    BOOST_REQUIRE(enc);
    BOOST_TEST(enc->size() <= kCachePayloadMax);
    BOOST_TEST(fit.candidates_left_out == 0u);
    BOOST_TEST(fit.card_responses_left_out > 0u);
    auto dec = decode_cache(enc->bytes());
    BOOST_REQUIRE(dec);
    BOOST_TEST(dec->card_responses.size() + fit.card_responses_left_out == p.card_responses.size());
    BOOST_TEST(std::any_of(dec->card_responses.begin(), dec->card_responses.end(),
                           [](const CardResponse& r) { return r.kind == CardResponse::Kind::next; }));
}

BOOST_AUTO_TEST_CASE(card_response_limits) {
    CachePayload p;
    p.card_responses.push_back(card_response(CardResponse::Kind::current, 1, 0, 8));
    BOOST_TEST((encode_cache(p).error() == CacheCodecError::bad_value));
    p.card_responses[0] = card_response(CardResponse::Kind::current, 1, 8, 0);
    BOOST_TEST((encode_cache(p).error() == CacheCodecError::bad_value));
    p.card_responses[0] = card_response(CardResponse::Kind::current, 1, kCacheMaxSeed + 1, 8);
    BOOST_TEST((encode_cache(p).error() == CacheCodecError::too_large));
    p.card_responses[0] = card_response(CardResponse::Kind::current, 1, 8, kCacheMaxResponse + 1);
    BOOST_TEST((encode_cache(p).error() == CacheCodecError::too_large));
    p.card_responses.clear();
    p.card_responses.push_back(card_response(CardResponse::Kind::current, 1, 8, 8));
    for (std::size_t i = 0; i < kCacheMaxCardResponses; ++i)
        p.card_responses.push_back(card_response(CardResponse::Kind::current, 1, 8, 8));
    BOOST_TEST((encode_cache(p).error() == CacheCodecError::too_many));
}

BOOST_AUTO_TEST_CASE(version2_card_responses_are_moved_into_the_section) {
    // An initramfs of the previous release hands its cache to a root of this one (same boot).
    const std::vector<unsigned char> seed(32, 0x5a), next_seed(32, 0xa5);
    const std::string response = "response-bytes", next_response = "next-response";
    auto hex = [](const std::string& s) {
        return to_hex(std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(s.data()), s.size()));
    };
    const auto bytes = version2({
        {"", "typed passphrase"},
        {"crypt-agent:card-response:" + to_hex(seed), hex(response)},
        {"crypt-agent:card-next:" + to_hex(next_seed), hex(next_response)},
        {"crypt-agent:card-response:zz", hex(response)},  // malformed: dropped, never a candidate
    });
    auto dec = decode_cache(bytes);
    BOOST_REQUIRE(dec);
    BOOST_REQUIRE(dec->candidates.size() == 1u);
    BOOST_TEST(dec->candidates[0].value.equals(Secret::copy_of("typed passphrase")));
    BOOST_REQUIRE(dec->card_responses.size() == 2u);
    BOOST_TEST((dec->card_responses[0].kind == CardResponse::Kind::current));
    BOOST_TEST((dec->card_responses[0].seed == seed));
    BOOST_TEST(dec->card_responses[0].response.equals(Secret::copy_of(response)));
    BOOST_TEST((dec->card_responses[1].kind == CardResponse::Kind::next));
    BOOST_TEST((dec->card_responses[1].seed == next_seed));
    // Written again, it is version 3 and reads back the same.
    auto enc = encode_cache(*dec);
    BOOST_REQUIRE(enc);
    auto again = decode_cache(enc->bytes());
    BOOST_REQUIRE(again);
    BOOST_TEST(again->card_responses.size() == 2u);
    BOOST_TEST(again->candidates.size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
