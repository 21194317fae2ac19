// SPDX-License-Identifier: MIT
// The harness judges replies the way systemd 252 does; if this parser were
// more lenient than systemd's, the bench could count as answered what a real
// asker rejects.  Cases follow strv_parse_nulstr() and ask_password_agent().
#define BOOST_TEST_MODULE storm_candidates
#include <boost/test/unit_test.hpp>

#include "bench/storm/asker.hpp"

#include <string>
#include <vector>

using storm::parse_candidates;
using V = std::vector<std::string>;

namespace {
V parse(const std::string& body) { return parse_candidates(body.data(), body.size()); }
}  // namespace

BOOST_AUTO_TEST_CASE(plus_alone_is_the_empty_password) { BOOST_TEST(parse("") == V{""}); }

BOOST_AUTO_TEST_CASE(one_password_with_or_without_trailing_nul) {
    BOOST_TEST(parse("pw") == V{"pw"});
    BOOST_TEST(parse(std::string("pw\0", 3)) == V{"pw"});
}

BOOST_AUTO_TEST_CASE(nul_separates_candidates_and_keeps_empty_ones) {
    BOOST_TEST(parse(std::string("a\0b", 3)) == (V{"a", "b"}));
    BOOST_TEST(parse(std::string("a\0\0b\0", 5)) == (V{"a", "", "b"}));
}

// strv_parse_nulstr("\0", 1) counts one NUL and drops no final item: one
// empty string, so "+\0" is the empty password, as "+" is.
BOOST_AUTO_TEST_CASE(a_lone_nul_is_the_empty_password) { BOOST_TEST(parse(std::string("\0", 1)) == V{""}); }
