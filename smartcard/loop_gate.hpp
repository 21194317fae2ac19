// SPDX-License-Identifier: MIT
// The monitor thread's door into the event loop (card operations complete
// through their own, card_operation.hpp, whose terminal cancellation does the
// same job).
//
// A thread that blocks in pcsc-lite can outlive the loop's interest in it
// (SCardGetStatusChange until SCardCancel reaches it).  It posts through a gate
// that the owner closes before the io_context goes away, so a late thread never
// touches a destroyed loop.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include <mutex>
#include <utility>

namespace ca::smartcard {

class LoopGate {
public:
    explicit LoopGate(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}

    // Posts `fn` into the loop unless the gate is closed; returns whether it did.
    template <class Fn>
    bool post(Fn&& fn) {
        std::lock_guard lock(mu_);
        if (!open_) return false;
        boost::asio::post(ex_, std::forward<Fn>(fn));
        return true;
    }
    void close() noexcept {
        std::lock_guard lock(mu_);
        open_ = false;
    }
    [[nodiscard]] const boost::asio::any_io_executor& executor() const noexcept { return ex_; }

private:
    std::mutex mu_;
    boost::asio::any_io_executor ex_;
    bool open_ = true;
};

}  // namespace ca::smartcard
