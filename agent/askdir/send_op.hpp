// SPDX-License-Identifier: MIT
// Sending one reply, as one asynchronous operation that owns its state and completes exactly
// once (Asio's cpp20/operations/composed_7.cpp): the first try runs at once, inside the
// initiating call; while the asker's receive queue is full (EAGAIN) the operation tries again
// after 1, 2, 4 ... 200 ms on a back-off timer of its own; the first outcome that is not
// `again` completes it: sent, gone, refused or gave_up.
//
// Why the first try is inline: a storm of questions is answered by one datagram each, nearly
// always accepted at once.  That path makes no timer, posts nothing and allocates nothing (the
// operation lives on the caller's stack and its completion runs inside the initiating call);
// the timer is made, and the operation moved to the heap, only at the first EAGAIN.
//
// Why the operation holds no copy of the reply: locked memory is scarce (RLIMIT_MEMLOCK is
// 64 KiB by default), and a backlog of full sockets would take a locked page each.  Each try
// encodes the reply again into the one locked buffer and wipes it after the send; `attempt`
// does that (and whatever bookkeeping the caller needs around a send) and says how it went.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

namespace ca::agent {

enum class Attempt { sent, again, gone, refused, gave_up };

struct SendResult {
    Attempt outcome = Attempt::gave_up;
    int err = 0;         // errno of a send that failed (gone, refused)
    unsigned tries = 0;  // tries made, the last one included
};

namespace detail {

template <typename AttemptFn>
struct SendOp {
    AttemptFn attempt;
    std::unique_ptr<boost::asio::steady_timer> backoff{};  // made at the first EAGAIN
    unsigned backoff_ms = 0;
    unsigned tries = 0;

    template <typename Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
        if (ec) return self.complete(SendResult{Attempt::gave_up, 0, tries});  // cancelled
        SendResult r = attempt(tries);
        r.tries = ++tries;
        if (r.outcome != Attempt::again) return self.complete(r);
        if (!backoff) backoff = std::make_unique<boost::asio::steady_timer>(self.get_io_executor());
        backoff_ms = backoff_ms == 0 ? 1 : std::min(backoff_ms * 2, 200u);
        backoff->expires_after(std::chrono::milliseconds(backoff_ms));
        backoff->async_wait(std::move(self));
    }
};

}  // namespace detail

// `attempt(tries)` -> SendResult is called at once (tries = 0), then on the loop after each
// back-off while it returns `again` (tries = the tries made so far).  Completion signature:
// void(SendResult); when the first try settles it, the completion runs inside this call.
template <typename Executor, typename AttemptFn, typename Token>
auto async_send_reply(const Executor& ex, AttemptFn attempt, Token&& token) {
    return boost::asio::async_compose<Token, void(SendResult)>(detail::SendOp<AttemptFn>{std::move(attempt)}, token,
                                                               ex);
}

}  // namespace ca::agent
