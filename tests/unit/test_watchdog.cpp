// SPDX-License-Identifier: MIT
// The questions' deadlines on one timer (agent/answer/watchdog): earliest first, ties in the
// order armed, an entry whose question re-armed or went is skipped, stale entries do not pile up.
// Deadlines in the past (the steady clock's epoch is the boot) fire at once: nothing is timed.
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/answer/watchdog.hpp"

using ca::agent::DeadlineQueue;
using ca::agent::Watchdog;
using Clock = std::chrono::steady_clock;

namespace {

Clock::time_point at_us(std::int64_t us) { return Clock::time_point(std::chrono::microseconds(us)); }

std::vector<std::string> pop_all(DeadlineQueue& queue, Clock::time_point now) {
    std::vector<std::string> out;
    while (auto e = queue.pop_due(now)) out.push_back(e->name);
    return out;
}

// The Answerer's side, in small: which ticket each question holds, what expired, and what an
// expiry does besides being recorded (`then`).
struct Questions {
    boost::asio::io_context io;
    std::map<std::string, Watchdog::Ticket> held;
    std::vector<std::string> expired;
    std::function<void(const std::string&)> then;
    Watchdog dog{io, [this](const std::string& n, Watchdog::Ticket t) { return current(n, t); },
                 [this](const std::string& n) {
                     expired.push_back(n);
                     if (then) then(n);
                 }};
    [[nodiscard]] bool current(const std::string& name, Watchdog::Ticket t) const {
        const auto it = held.find(name);
        return it != held.end() && it->second == t;
    }
    void arm(const std::string& name, Clock::time_point at) { held[name] = dog.arm(name, at); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(watchdog)

BOOST_AUTO_TEST_CASE(queue_earliest_first_ties_in_arming_order) {
    DeadlineQueue queue;
    queue.push(at_us(30), 1, "c");
    queue.push(at_us(10), 2, "a");
    queue.push(at_us(20), 3, "b1");
    queue.push(at_us(50), 4, "late");
    queue.push(at_us(20), 5, "b2");
    BOOST_TEST((queue.earliest() == at_us(10)));
    BOOST_TEST(!queue.pop_due(at_us(9)).has_value());
    BOOST_TEST(pop_all(queue, at_us(30)) == (std::vector<std::string>{"a", "b1", "b2", "c"}));
    BOOST_TEST(queue.size() == 1U);
    BOOST_TEST((queue.earliest() == at_us(50)));
    BOOST_TEST(pop_all(queue, at_us(50)) == std::vector<std::string>{"late"});
    BOOST_TEST(!queue.earliest().has_value());
}

BOOST_AUTO_TEST_CASE(queue_retain_keeps_order) {
    DeadlineQueue queue;
    for (std::uint64_t t = 1; t <= 20; ++t) queue.push(at_us(static_cast<std::int64_t>(100 - t)), t, std::to_string(t));
    queue.retain([](const std::string&, std::uint64_t t) { return t % 3 == 0; });
    BOOST_TEST(queue.size() == 6U);
    BOOST_TEST(pop_all(queue, at_us(100)) == (std::vector<std::string>{"18", "15", "12", "9", "6", "3"}));
}

BOOST_AUTO_TEST_CASE(stale_entries_are_skipped) {
    Questions qs;
    qs.arm("late", at_us(40));
    qs.arm("early", at_us(10));
    qs.arm("rearmed", at_us(5));
    qs.arm("rearmed", at_us(30));  // its first entry is stale
    qs.arm("gone", at_us(20));
    qs.held.erase("gone");  // the question went
    qs.arm("answered", at_us(25));
    qs.held["answered"] = 0;  // answered: disarmed
    BOOST_TEST(qs.dog.arm("never", Clock::time_point::max()) == 0U);
    qs.io.run();
    BOOST_TEST(qs.expired == (std::vector<std::string>{"early", "rearmed", "late"}));
    BOOST_TEST(qs.dog.queued() == 0U);
}

BOOST_AUTO_TEST_CASE(an_expiry_may_arm_again) {
    // A held question answered after its grace second may wait again, with its NotAfter.
    Questions qs;
    qs.then = [&qs](const std::string& n) {
        if (n == "held" && qs.expired.size() == 1) qs.arm("held", at_us(60));
        else qs.held.erase(n);
    };
    qs.arm("held", at_us(50));
    qs.arm("other", at_us(55));
    qs.io.run();
    BOOST_TEST(qs.expired == (std::vector<std::string>{"held", "other", "held"}));
}

BOOST_AUTO_TEST_CASE(an_expiry_that_always_arms_again_does_not_spin) {
    // Each pass handles what was armed before it: the loop turns, other work gets its turn.
    Questions qs;
    qs.then = [&qs](const std::string& n) { qs.arm(n, at_us(1)); };
    qs.arm("again", at_us(1));
    std::size_t passes = 0;
    while (qs.expired.size() < 3 && passes < 100) passes += qs.io.run_one();
    BOOST_TEST(qs.expired.size() == 3U);
    BOOST_TEST(passes == qs.expired.size());  // one expiry per turn of the loop
    qs.dog.stop();
    qs.io.run();
}

BOOST_AUTO_TEST_CASE(stale_entries_do_not_pile_up) {
    // One question re-armed many times with a far deadline: the queue stays small, and
    // stop() ends the one wait.
    Questions qs;
    const auto far = Clock::now() + std::chrono::hours(24);
    for (int i = 0; i < 10000; ++i) qs.arm("q", far - std::chrono::seconds(i % 7));
    BOOST_TEST(qs.dog.queued() <= 65U);
    qs.dog.stop();
    qs.io.run();
    BOOST_TEST(qs.expired.empty());
    BOOST_TEST(qs.dog.arm("q", at_us(1)) == 0U);  // stopped: arms nothing
}

BOOST_AUTO_TEST_SUITE_END()
