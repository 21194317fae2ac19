// SPDX-License-Identifier: MIT
// Every deadline of the open questions in one place, watched by one timer: the NotAfter of a
// question left waiting, and the grace second of one that a killed instance may have
// answered.  A question holds a ticket, not a timer: no timer object, no handler and no
// timerfd change per question; the timer is set again only when the earliest deadline changes.
// The shape of Asio's cpp20/coroutines/timeout_watchdog.cpp: wait until the earliest deadline,
// act on what is due, wait again.
//
// Nothing is removed when a question is answered, re-armed or goes away: its entry goes stale,
// and the owner's `current(name, ticket)` says so when the entry comes up (it is skipped) or
// when stale entries outnumber the live ones (they are dropped), so the queue stays within
// twice the armed questions.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ca::agent {

// The deadlines ordered by time (a binary heap); ties in the order they were armed.  Pure:
// the caller says what "now" is.
class DeadlineQueue {
public:
    using Clock = std::chrono::steady_clock;
    struct Entry {
        Clock::time_point at;
        std::uint64_t ticket = 0;
        std::string name;
    };

    void push(Clock::time_point at, std::uint64_t ticket, std::string name);
    // The earliest entry if it is due at `now` (removed from the queue), else nothing.
    [[nodiscard]] std::optional<Entry> pop_due(Clock::time_point now);
    [[nodiscard]] std::optional<Clock::time_point> earliest() const noexcept;
    // Keeps only the entries for which keep(name, ticket) is true.
    void retain(const std::function<bool(const std::string&, std::uint64_t)>& keep);
    [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }

private:
    std::vector<Entry> heap_;
};

class Watchdog {
public:
    using Clock = DeadlineQueue::Clock;
    using Ticket = std::uint64_t;  // 0: no deadline
    // Is this still the question's deadline (the ticket it holds)?
    using Current = std::function<bool(const std::string& name, Ticket)>;
    // A current deadline has come: the entry is gone, the question still holds its ticket.
    using Expired = std::function<void(const std::string& name)>;

    Watchdog(boost::asio::io_context& io, Current current, Expired expired);

    // Arms a deadline for the question `name`; the question keeps the ticket (a new arm
    // replaces its deadline: the old ticket is no longer current).  A deadline that never
    // comes (time_point::max(), NotAfter=0) arms nothing and returns 0.
    [[nodiscard]] Ticket arm(const std::string& name, Clock::time_point at);
    // No expiry is called after this.
    void stop() noexcept;
    [[nodiscard]] std::size_t queued() const noexcept { return queue_.size(); }

private:
    void wait_for_earliest();
    void on_timer(const boost::system::error_code& ec);

    boost::asio::steady_timer timer_;
    Current current_;
    Expired expired_;
    DeadlineQueue queue_;
    Clock::time_point armed_ = Clock::time_point::max();  // what the timer waits for
    Ticket last_ticket_ = 0;
    std::size_t compact_above_ = kMinCompact;
    bool firing_ = false;
    bool stopped_ = false;
    static constexpr std::size_t kMinCompact = 64;
};

}  // namespace ca::agent
