// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>

#include "agent/clock.hpp"

using ca::agent::deadline_of;
using Clock = std::chrono::steady_clock;

BOOST_AUTO_TEST_SUITE(deadline)

// systemd-ask-password --timeout=300y writes NotAfter=9467282691653283: past what
// steady_clock's nanoseconds can hold.  It must be a far deadline, never one in the past.
BOOST_AUTO_TEST_CASE(not_after_edges) {
    BOOST_TEST((deadline_of(0) == Clock::time_point::max()));           // never
    BOOST_TEST((deadline_of(UINT64_MAX) == Clock::time_point::max()));  // never
    BOOST_TEST((deadline_of(1).time_since_epoch() == std::chrono::microseconds(1)));
    const std::uint64_t p53 = std::uint64_t{1} << 53;
    BOOST_TEST((deadline_of(p53).time_since_epoch() == std::chrono::microseconds(p53)));
    BOOST_TEST((deadline_of(9467282691653283ULL) == Clock::time_point::max()));
    BOOST_TEST((deadline_of((std::uint64_t{1} << 63) - 1) == Clock::time_point::max()));
    BOOST_TEST((deadline_of(std::uint64_t{1} << 63) == Clock::time_point::max()));
    BOOST_TEST((deadline_of(UINT64_MAX - 1) == Clock::time_point::max()));
    // Monotonic: a later NotAfter is never an earlier deadline.
    BOOST_TEST((deadline_of(p53) <= deadline_of(p53 * 2)));
    const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
    BOOST_TEST((deadline_of(static_cast<std::uint64_t>(now_us) + 1000000) > Clock::now()));
}

BOOST_AUTO_TEST_SUITE_END()
