// SPDX-License-Identifier: MIT
// Sending a reply again while the asker's receive queue is full (EAGAIN): one asynchronous
// operation that owns its back-off timer and its target, tries again at 1, 2, 4 ... 200 ms,
// and completes exactly once: sent, the asker gone, or given up.  Written as Asio's
// cpp20/operations/composed_7.cpp writes one: the state lives in the operation, not as flags
// on the question.
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

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

namespace ca::agent {

enum class Attempt { sent, again, gone, gave_up };

namespace detail {

template <typename AttemptFn>
struct ResendOp {
    std::unique_ptr<boost::asio::steady_timer> timer;
    AttemptFn attempt;
    unsigned backoff_ms = 0;
    bool started = false;

    template <typename Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
        if (started) {
            if (ec) return self.complete(Attempt::gave_up);  // cancelled: the loop is stopping
            const Attempt r = attempt();
            if (r != Attempt::again) return self.complete(r);
        }
        started = true;
        backoff_ms = backoff_ms == 0 ? 1 : std::min(backoff_ms * 2, 200u);
        timer->expires_after(std::chrono::milliseconds(backoff_ms));
        timer->async_wait(std::move(self));
    }
};

}  // namespace detail

// `attempt()` -> Attempt is called on the loop after each back-off; the operation completes
// with the first result that is not `again`.  Completion signature: void(Attempt).
template <typename AttemptFn, typename Token>
auto async_resend(boost::asio::any_io_executor ex, AttemptFn attempt, Token&& token) {
    return boost::asio::async_compose<Token, void(Attempt)>(
        detail::ResendOp<AttemptFn>{std::make_unique<boost::asio::steady_timer>(ex), std::move(attempt)}, token, ex);
}

}  // namespace ca::agent
