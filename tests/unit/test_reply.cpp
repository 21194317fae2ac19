// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <vector>
#include "printers.hpp"

#include "proto/reply.hpp"

using namespace ca::proto;

namespace {
std::vector<const Secret*> ptrs(const std::vector<Secret>& v) {
    std::vector<const Secret*> p;
    for (const auto& s : v) p.push_back(&s);
    return p;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(reply)

BOOST_AUTO_TEST_CASE(one_and_several_candidates) {
    std::vector<Secret> c;
    c.push_back(Secret::copy_of("alpha"));
    auto r = encode_reply(ptrs(c));
    BOOST_REQUIRE(r);
    BOOST_TEST(std::memcmp(r->data(), "+alpha", 6) == 0);
    BOOST_TEST(r->size() == 6u);
    c.push_back(Secret::copy_of("beta"));
    r = encode_reply(ptrs(c));
    BOOST_REQUIRE(r);
    BOOST_TEST(r->size() == 11u);
    BOOST_TEST(std::memcmp(r->data(), "+alpha\0beta", 11) == 0);
    auto d = decode_reply(r->bytes());
    BOOST_REQUIRE(d);
    BOOST_TEST(d->count == 2u);
}

BOOST_AUTO_TEST_CASE(refuses_nul_empty_and_oversize) {
    std::vector<Secret> c;
    c.push_back(Secret::copy_of(std::string_view("a\0b", 3)));
    BOOST_TEST(encode_reply(ptrs(c)).error() == ReplyError::nul_in_candidate);
    c.clear();
    c.push_back(Secret::copy_of(""));
    BOOST_TEST(encode_reply(ptrs(c)).error() == ReplyError::empty_candidate);
    BOOST_TEST(encode_reply({}).error() == ReplyError::no_candidates);
    c.clear();
    c.push_back(Secret::copy_of(std::string(2048, 'x')));  // '+' + 2048 = 2049: the limit
    BOOST_TEST(encode_reply(ptrs(c)).has_value());
    c.clear();
    c.push_back(Secret::copy_of(std::string(2049, 'x')));
    BOOST_TEST(encode_reply(ptrs(c)).error() == ReplyError::too_large);
}

BOOST_AUTO_TEST_CASE(candidates_that_fit_stops_at_the_limit) {
    std::vector<Secret> c;
    for (int i = 0; i < 5; ++i) c.push_back(Secret::copy_of(std::string(600, static_cast<char>('a' + i))));
    // 1 + 600 + 3*(1+600) = 2404 > 2049; three fit: 1 + 600 + 601 + 601 = 1803
    BOOST_TEST(candidates_that_fit(ptrs(c)) == 3u);
    auto p = ptrs(c);
    p.resize(3);
    auto r = encode_reply(p);
    BOOST_REQUIRE(r);
    BOOST_TEST(r->size() <= kReplyMaxSize);
}

BOOST_AUTO_TEST_CASE(decode_as_systemd_does) {
    const unsigned char cancel[] = {'-'};
    BOOST_TEST(decode_reply(cancel)->cancel);
    const unsigned char trailing[] = {'+', 'a', 0, 'b', 0};
    BOOST_TEST(decode_reply(trailing)->count == 2u);
    const unsigned char empty_mid[] = {'+', 'a', 0, 0, 'b'};
    BOOST_TEST(!decode_reply(empty_mid).has_value());
    const unsigned char bad[] = {'x', 'a'};
    BOOST_TEST(!decode_reply(bad).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
