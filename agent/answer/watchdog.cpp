// SPDX-License-Identifier: MIT
#include "agent/answer/watchdog.hpp"

#include <algorithm>
#include <utility>

namespace ca::agent {

namespace {

// The standard heap keeps the greatest in front: "later" as the order puts the earliest there.
bool later(const DeadlineQueue::Entry& a, const DeadlineQueue::Entry& b) noexcept {
    return a.at != b.at ? a.at > b.at : a.ticket > b.ticket;
}

}  // namespace

void DeadlineQueue::push(Clock::time_point at, std::uint64_t ticket, std::string name) {
    heap_.push_back(Entry{at, ticket, std::move(name)});
    std::push_heap(heap_.begin(), heap_.end(), later);
}

std::optional<DeadlineQueue::Entry> DeadlineQueue::pop_due(Clock::time_point now) {
    if (heap_.empty() || heap_.front().at > now) return std::nullopt;
    std::pop_heap(heap_.begin(), heap_.end(), later);
    std::optional<Entry> e(std::move(heap_.back()));
    heap_.pop_back();
    return e;
}

std::optional<DeadlineQueue::Clock::time_point> DeadlineQueue::earliest() const noexcept {
    if (heap_.empty()) return std::nullopt;
    return heap_.front().at;
}

void DeadlineQueue::retain(const std::function<bool(const std::string&, std::uint64_t)>& keep) {
    std::erase_if(heap_, [&keep](const Entry& e) { return !keep(e.name, e.ticket); });
    std::make_heap(heap_.begin(), heap_.end(), later);
}

Watchdog::Watchdog(boost::asio::io_context& io, Current current, Expired expired)
    : timer_(io), current_(std::move(current)), expired_(std::move(expired)) {}

Watchdog::Ticket Watchdog::arm(const std::string& name, Clock::time_point at) {
    if (stopped_ || at == Clock::time_point::max()) return 0;
    // Before the push: the new entry's ticket is not held by its question yet.  Amortised
    // O(1): the next pass comes only after the queue has doubled again.
    if (queue_.size() >= compact_above_) {
        queue_.retain(current_);
        compact_above_ = std::max(kMinCompact, 2 * queue_.size());
    }
    const Ticket ticket = ++last_ticket_;
    queue_.push(at, ticket, name);
    // While expiries are handled the timer is set once, after them.
    if (!firing_ && at < armed_) wait_for_earliest();
    return ticket;
}

void Watchdog::stop() noexcept {
    stopped_ = true;
    timer_.cancel();
}

void Watchdog::wait_for_earliest() {
    const auto next = queue_.earliest();
    if (!next) return;  // a wait still pending for an entry since handled finds nothing due
    armed_ = *next;
    timer_.expires_at(*next);  // cancels the wait for a later deadline, if one is pending
    timer_.async_wait([this](const boost::system::error_code& ec) { on_timer(ec); });
}

void Watchdog::on_timer(const boost::system::error_code& ec) {
    // operation_aborted: set again for an earlier deadline (that wait is pending), or stopped.
    if (ec || stopped_) return;
    armed_ = Clock::time_point::max();
    {
        firing_ = true;
        struct EndOfFiring {
            bool& flag;
            ~EndOfFiring() { flag = false; }
        } end_of_firing{firing_};
        const auto now = Clock::now();
        // One at a time: an expiry may arm another deadline (a held question, answered now,
        // may wait again with its NotAfter).  One armed during this pass waits for the next,
        // even if it is due already: an expiry that always arms again cannot spin here.
        const Ticket armed_before = last_ticket_;
        while (!stopped_) {
            auto e = queue_.pop_due(now);
            if (!e) break;
            if (e->ticket > armed_before) {
                queue_.push(e->at, e->ticket, std::move(e->name));
                break;
            }
            if (current_(e->name, e->ticket)) expired_(e->name);
        }
    }
    if (!stopped_) wait_for_earliest();
}

}  // namespace ca::agent
