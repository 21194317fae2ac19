// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>
#include <string>

#include "proto/glob.hpp"

using ca::proto::glob_match;

BOOST_AUTO_TEST_SUITE(glob)

BOOST_AUTO_TEST_CASE(id_patterns) {
    BOOST_TEST(glob_match("cryptsetup:*", "cryptsetup:/dev/vda2"));
    BOOST_TEST(glob_match("cryptsetup:*", "cryptsetup:"));
    BOOST_TEST(!glob_match("cryptsetup:*", "cryptsetup"));
    BOOST_TEST(!glob_match("cryptsetup:*", "vpn:cryptsetup:x"));
    BOOST_TEST(!glob_match("cryptsetup:*", ""));
    BOOST_TEST(glob_match("cryptsetup:/dev/vd?2", "cryptsetup:/dev/vda2"));
    BOOST_TEST(glob_match("cryptsetup:/dev/vd[a-c]*", "cryptsetup:/dev/vdb1"));
    BOOST_TEST(!glob_match("cryptsetup:/dev/vd[!a-c]*", "cryptsetup:/dev/vdb1"));
    BOOST_TEST(glob_match("*", ""));
    BOOST_TEST(glob_match("a\\*b", "a*b"));
    BOOST_TEST(!glob_match("a\\*b", "axb"));
    BOOST_TEST(glob_match("exact", "exact"));
    BOOST_TEST(!glob_match("exact", "exactly"));
}

BOOST_AUTO_TEST_CASE(hostile_pattern_is_linear) {
    // A naive recursive matcher takes exponential time here.
    std::string text(5000, 'a');
    BOOST_TEST(!glob_match("*a*a*a*a*a*a*a*a*a*a*b", text));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(glob_bytes)
BOOST_AUTO_TEST_CASE(ranges_compare_unsigned_like_fnmatch) {
    // Found by fuzz_glob against fnmatch(3): tests/fuzz/regressions/glob/range-across-0x80.
    BOOST_TEST(ca::proto::glob_match("[a-\xff]", "b"));
    BOOST_TEST(!ca::proto::glob_match("[\x80-\xff]", "a"));
    BOOST_TEST(ca::proto::glob_match("[\x80-\xff]", "\xc3"));
}
BOOST_AUTO_TEST_SUITE_END()
