#include <boost/test/unit_test.hpp>
#include "printers.hpp"

#include "proto/cache_codec.hpp"

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
    a.sent_to = {"cryptsetup:/dev/vda2"};
    a.rejected_by = {"cryptsetup:/dev/vdb1", "cryptsetup:/dev/vdc1"};
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
    BOOST_TEST(dec->candidates[0].rejected_by.size() == 2u);
    BOOST_TEST(dec->candidates[1].patterns.front() == "cryptsetup:/dev/vdb1");
    BOOST_TEST((dec->candidates[1].origin == Origin::card));
}

BOOST_AUTO_TEST_CASE(every_truncation_is_an_error_not_a_crash) {
    CachePayload p;
    p.expires_us = 10;
    CachedCandidate a;
    a.value = Secret::copy_of("x");
    a.sent_to = {"id"};
    p.candidates.push_back(std::move(a));
    auto enc = encode_cache(p);
    BOOST_REQUIRE(enc);
    for (std::size_t n = 0; n < enc->size(); ++n)
        BOOST_TEST(!decode_cache(enc->bytes().first(n)).has_value());
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
    p.candidates[0].value = Secret::copy_of(std::string(kCachePayloadMax, 'z'));
    BOOST_TEST((encode_cache(p).error() == CacheCodecError::too_large));
}

BOOST_AUTO_TEST_SUITE_END()
