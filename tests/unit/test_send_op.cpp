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

namespace {

// An operation whose tries return what `outcome(tries)` says; what the tries and the
// completion saw.
struct Reply {
    boost::asio::io_context io;
    std::vector<unsigned> tries;
    std::vector<SendResult> done;
    template <typename Outcome>
    void start(Outcome outcome) {
        async_send_reply(
            io.get_executor(),
            [this, outcome](unsigned t) {
                tries.push_back(t);
                return outcome(t);
            },
            [this](SendResult r) { done.push_back(r); });
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(send_op)

BOOST_AUTO_TEST_CASE(first_try_completes_inside_the_call) {
    Reply reply;
    reply.start([](unsigned) { return SendResult{Attempt::sent, 0}; });
    BOOST_TEST(reply.tries == std::vector<unsigned>{0});
    BOOST_TEST_REQUIRE(reply.done.size() == 1U);  // before any turn of the loop
    BOOST_TEST((reply.done[0].outcome == Attempt::sent));
    BOOST_TEST(reply.done[0].tries == 1U);
    BOOST_TEST(reply.io.poll() == 0U);  // nothing was queued: no timer, no post
}

BOOST_AUTO_TEST_CASE(again_backs_off_and_completes_once) {
    Reply reply;
    reply.start([](unsigned t) { return t < 3 ? SendResult{Attempt::again, 11} : SendResult{Attempt::gone, 111}; });
    BOOST_TEST(reply.tries == std::vector<unsigned>{0});  // the first try, at once
    BOOST_TEST(reply.done.empty());
    reply.io.run();
    BOOST_TEST(reply.tries == (std::vector<unsigned>{0, 1, 2, 3}));
    BOOST_TEST_REQUIRE(reply.done.size() == 1U);
    BOOST_TEST((reply.done[0].outcome == Attempt::gone));
    BOOST_TEST(reply.done[0].err == 111);
    BOOST_TEST(reply.done[0].tries == 4U);
}

BOOST_AUTO_TEST_SUITE_END()
