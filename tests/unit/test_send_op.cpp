// SPDX-License-Identifier: MIT
// One reply as one operation (agent/askdir/send_op.hpp): the first try runs inside the
// initiating call (no loop turn, no timer) and may complete it there; after EAGAIN the tries
// follow on the operation's own back-off; it completes exactly once.
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
#include <vector>

#include "agent/askdir/send_op.hpp"

using ca::agent::async_send_reply;
using ca::agent::Attempt;
using ca::agent::SendResult;

BOOST_AUTO_TEST_SUITE(send_op)

BOOST_AUTO_TEST_CASE(first_try_completes_inside_the_call) {
    boost::asio::io_context io;
    std::vector<unsigned> tries;
    std::vector<SendResult> done;
    async_send_reply(
        io.get_executor(),
        [&tries](unsigned t) {
            tries.push_back(t);
            return SendResult{Attempt::sent, 0};
        },
        [&done](SendResult r) { done.push_back(r); });
    BOOST_TEST(tries == std::vector<unsigned>{0});
    BOOST_TEST_REQUIRE(done.size() == 1U);  // before any turn of the loop
    BOOST_TEST((done[0].outcome == Attempt::sent));
    BOOST_TEST(done[0].tries == 1U);
    BOOST_TEST(io.poll() == 0U);  // nothing was queued: no timer, no post
}

BOOST_AUTO_TEST_CASE(again_backs_off_and_completes_once) {
    boost::asio::io_context io;
    std::vector<unsigned> tries;
    std::vector<SendResult> done;
    async_send_reply(
        io.get_executor(),
        [&tries](unsigned t) {
            tries.push_back(t);
            return t < 3 ? SendResult{Attempt::again, 11} : SendResult{Attempt::gone, 111};
        },
        [&done](SendResult r) { done.push_back(r); });
    BOOST_TEST(tries == std::vector<unsigned>{0});  // the first try, at once
    BOOST_TEST(done.empty());
    io.run();
    BOOST_TEST(tries == (std::vector<unsigned>{0, 1, 2, 3}));
    BOOST_TEST_REQUIRE(done.size() == 1U);
    BOOST_TEST((done[0].outcome == Attempt::gone));
    BOOST_TEST(done[0].err == 111);
    BOOST_TEST(done[0].tries == 4U);
}

BOOST_AUTO_TEST_SUITE_END()
