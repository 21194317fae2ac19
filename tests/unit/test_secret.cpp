// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>
#include <type_traits>

#include "proto/secret.hpp"

using namespace ca::proto;

BOOST_AUTO_TEST_SUITE(secret)

BOOST_AUTO_TEST_CASE(move_only_and_never_a_string) {
    static_assert(!std::is_copy_constructible_v<Secret>);
    static_assert(!std::is_copy_assignable_v<Secret>);
    static_assert(std::is_nothrow_move_constructible_v<Secret>);
    static_assert(!std::is_convertible_v<Secret, std::string>);
    static_assert(!std::is_constructible_v<std::string, Secret>);
}

BOOST_AUTO_TEST_CASE(move_leaves_source_empty) {
    Secret a = Secret::copy_of("abc");
    Secret b = std::move(a);
    BOOST_TEST(a.empty());  // NOLINT(bugprone-use-after-move): that is the point
    BOOST_TEST(b.size() == 3u);
    BOOST_TEST(b.clone().equals(b));
}

BOOST_AUTO_TEST_CASE(locked_in_memory) {
    // mlock succeeds for root and within RLIMIT_MEMLOCK (8 MiB on Debian for users).
    Secret s(32);
    BOOST_TEST(s.locked());
}

BOOST_AUTO_TEST_CASE(truncate_wipes_the_tail_and_append_grows) {
    Secret s = Secret::copy_of("secret\n");
    const unsigned char* p = s.data();
    s.truncate(6);
    BOOST_TEST(s.size() == 6u);
    BOOST_TEST(p[6] == 0);  // the newline was wiped, in place
    const unsigned char more[] = {'!', '!'};
    s.append(more);
    BOOST_TEST(s.size() == 8u);
    BOOST_TEST(s.chars()[7] == '!');
}

BOOST_AUTO_TEST_CASE(fingerprint_is_keyed_and_short) {
    unsigned char k1[16] = {1}, k2[16] = {2};
    FingerprintKey a(k1), b(k2);
    Secret s = Secret::copy_of("hunter2");
    BOOST_TEST(a.fingerprint(s).size() == 4u);
    BOOST_TEST(a.fingerprint(s) == a.fingerprint(s));
    // Different keys, different fingerprints (with overwhelming probability for this input).
    BOOST_TEST(a.fingerprint(s) != b.fingerprint(s));
}

BOOST_AUTO_TEST_CASE(siphash_reference_vector) {
    // From the SipHash paper: key 00..0f, message 00..0e (15 bytes) -> a129ca6149be45e5.
    unsigned char msg[15];
    for (unsigned char i = 0; i < 15; ++i) msg[i] = i;
    const std::uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
    BOOST_TEST(siphash24(k0, k1, msg) == 0xa129ca6149be45e5ULL);
}

BOOST_AUTO_TEST_SUITE_END()
