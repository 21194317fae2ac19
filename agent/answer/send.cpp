// SPDX-License-Identifier: MIT
// Sending one reply: one operation (askdir/send_op.hpp) whose first try runs at once and
// whose tries after an EAGAIN follow on its own back-off.  Each try encodes the reply into
// the one locked buffer, records the answer (AnsweredLog) before the datagram goes, sends,
// and wipes the buffer; the operation's one completion settles the question.
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "agent/answer/describe.hpp"
#include "agent/answer/flow.hpp"
#include "agent/askdir/files.hpp"
#include "agent/askdir/send_op.hpp"
#include "agent/clock.hpp"
#include "agent/daemon/notify.hpp"
#include "agent/fault.hpp"
#include "agent/log.hpp"
#include "proto/cache_codec.hpp"
#include "proto/reply.hpp"

namespace ca::agent {

namespace {

// The first n bytes of the one locked reply buffer are wiped when a try leaves, whichever
// way it leaves.
struct WipeOnExit {
    proto::Secret& buf;
    std::size_t n;
    WipeOnExit(proto::Secret& b, std::size_t len) : buf(b), n(len) {}
    WipeOnExit(const WipeOnExit&) = delete;
    WipeOnExit& operator=(const WipeOnExit&) = delete;
    ~WipeOnExit() { proto::wipe(buf.data(), n); }
};

// One reply's candidates, on the stack: a reply holds at most what the cache holds.
using ReplyCandidates = std::array<const proto::Secret*, proto::kCacheMaxCandidates>;

}  // namespace

void Answerer::send_to(TrackedAsk& q, std::vector<std::size_t> chosen) {
    const auto& cache = *cache_.payload();
    ReplyCandidates ptrs{};
    const std::size_t n = std::min(chosen.size(), ptrs.size());
    for (std::size_t k = 0; k < n; ++k) ptrs[k] = &cache.candidates[chosen[k]].value;
    const auto fit = proto::candidates_that_fit(std::span(ptrs.data(), n));
    if (fit == 0) {
        questions_.transition(q, State::ignored);
        CA_LOG(err) << describe(q.name, q.id) << ": no cached candidate fits in one reply (2049 bytes), ignoring";
        return;
    }
    // The reply by the candidates' identities: each try encodes it again from the cache.
    const std::size_t first = q.sent.size();
    for (std::size_t k = 0; k < fit; ++k) q.sent.push_back(cache_.hashes()[chosen[k]]);
    // The first try runs inside this call, and so does the completion when it settles it.
    async_send_reply(
        io_.get_executor(),
        [this, weak = q.weak_from_this(), first, target = std::optional<SendTarget>()](unsigned tries) mutable {
            const auto held = weak.lock();
            if (!held || (tries != 0 && stopping_)) return SendResult{};  // its file went, or we are stopping
            return try_reply(*held, first, target, tries);
        },
        [this, weak = q.weak_from_this(), first](SendResult r) {
            if (const auto held = weak.lock()) replied(*held, first, r);
        });
}

SendResult Answerer::try_reply(TrackedAsk& q, std::size_t first, std::optional<SendTarget>& target, unsigned tries) {
    if (tries != 0 && q.ask.has_deadline() && monotonic_us() >= q.ask.not_after_us) {
        CA_LOG(info) << describe(q.name, q.id) << ": deadline passed while its socket stayed full";
        questions_.transition(q, State::ignored);
        return {};
    }
    ReplyCandidates ptrs{};
    std::size_t n = 0;
    for (std::size_t k = first; k < q.sent.size() && n < ptrs.size(); ++k)
        if (const auto* v = cache_.value_of(q.sent[k])) ptrs[n++] = v;
    if (n != q.sent.size() - first) {  // a reload or an expiry emptied the cache meanwhile
        CA_LOG(info) << describe(q.name, q.id) << ": its candidates left the cache while its socket stayed full";
        questions_.transition(q, State::ignored);
        return {};
    }
    // One locked buffer serves every reply: no mmap/mlock/munlock/munmap per question.
    if (reply_buf_.size() < proto::kReplyMaxSize) reply_buf_ = proto::Secret(proto::kReplyMaxSize);
    const auto len = proto::encode_reply_into(std::span(ptrs.data(), n), reply_buf_.bytes());
    if (!len) {
        questions_.transition(q, State::ignored);
        CA_LOG(err) << describe(q.name, q.id) << ": cannot encode a reply: " << proto::to_string(len.error());
        return {};
    }
    const WipeOnExit wipe_after{reply_buf_, *len};
    if (!target) {
        // The asker's PID is not looked at first: the send tells us if it is gone
        // (ECONNREFUSED: nobody holds its socket any more).
        struct stat sock_st {};
        auto resolved = resolve_socket(dir_.dir_stat(), q.ask.socket, owner_, dir_.dir_fd(), dir_.dir_path(), &sock_st);
        if (!resolved && (resolved.error().find("Too many open files") != std::string::npos)) {
            CA_LOG(warning) << describe(q.name, q.id) << ": " << resolved.error() << "; will retry";
            questions_.transition(q, State::retry);  // the rescan reads it again
            dir_.rescan_later();
            return {};
        }
        if (!resolved) {
            questions_.transition(q, State::ignored);
            CA_LOG(warning) << describe(q.name, q.id) << ": " << resolved.error() << "; not sending anything there";
            return {};
        }
        q.sock = SocketIdentity{static_cast<std::uint64_t>(sock_st.st_dev), static_cast<std::uint64_t>(sock_st.st_ino)};
        target = std::move(*resolved);
    }
    // Recorded before every send: a crash after it can never lead to a second reply (AnsweredLog).
    record_answer(q);
    if (tries == 0) fault::kill_at_send(false);
    int err = 0;
    const auto status = send_datagram(sender_.get(), *target, reply_buf_.bytes().first(*len), err);
    if (tries == 0) fault::kill_at_send(true);
    if (status != SendStatus::sent && q.keyed) answered_.erase(q.key);  // nothing delivered: no claim
    switch (status) {
    case SendStatus::sent: return {Attempt::sent, 0};
    case SendStatus::gone: return {Attempt::gone, err};
    case SendStatus::refused: return {Attempt::refused, err};
    case SendStatus::again:
        // The asker's receive queue is full: the same candidates again, after a back-off.
        questions_.transition(q, State::sending);
        return {Attempt::again, err};
    }
    return {};
}

void Answerer::replied(TrackedAsk& q, std::size_t first, SendResult r) {
    const bool drained = r.tries > 1;  // sent (or failed) after waiting for the socket to drain
    switch (r.outcome) {
    case Attempt::sent: break;
    case Attempt::gone:
    case Attempt::refused:
        q.sent.resize(first);  // nothing delivered
        questions_.transition(q, r.outcome == Attempt::gone ? State::gone : State::ignored);
        if (drained) CA_LOG(info) << describe(q.name, q.id) << ": asker gone before its socket drained";
        else if (r.outcome == Attempt::gone)
            CA_LOG(debug) << describe(q.name, q.id) << ": asker gone (" << std::strerror(r.err) << ")";
        else
            CA_LOG(warning) << describe(q.name, q.id) << ": cannot send to its socket: " << std::strerror(r.err)
                            << ", ignoring";
        return;
    case Attempt::again:  // never an outcome: the operation tries again
    case Attempt::gave_up:
        q.sent.resize(first);  // its state says why (the try that gave up set it)
        return;
    }
    q.watch = 0;  // its deadline, if armed, no longer matters
    delivered(q, first);
    if (drained) {
        CA_LOG(info) << describe(q.name, q.id) << ": answered after its socket drained";
    } else if (log_enabled(Level::info)) {
        std::string fps;  // keyed 4-hex fingerprints: tell candidates apart, reveal nothing
        for (std::size_t k = first; k < q.sent.size(); ++k)
            if (const auto* v = cache_.value_of(q.sent[k])) fps += (fps.empty() ? "" : ",") + cache_.fingerprint(*v);
        CA_LOG(info) << describe(q.name, q.id) << ": answered with " << (q.sent.size() - first) << " candidate(s) ["
                     << fps << "]";
    }
    if (questions_.stats().answered % 64 == 1)
        sd_notify("STATUS=Answered " + std::to_string(questions_.stats().answered) + " question(s)");
}

void Answerer::delivered(TrackedAsk& q, std::size_t first) {
    auto& ids = ledger_.of(q.id);
    for (std::size_t k = first; k < q.sent.size(); ++k) ids.sent.insert(q.sent[k]);
    questions_.transition(q, State::answered);
    cache_.changed();
}

void Answerer::record_answer(TrackedAsk& q) {
    if (!q.keyed) return;
    auto err = answered_.record(q.key, q.sock);
    if (err && answered_warned_.first())
        CA_LOG(warning) << "cannot record an answered question (" << *err
                        << "); answering anyway, but a restart may answer it twice";
    if (answered_.evicted() && evicted_warned_.first())
        CA_LOG(warning) << "more than " << AnsweredLog::kMaxSlots << " answered questions are still pending; "
                        << "the oldest records are given up (a restart may answer those twice)";
}

}  // namespace ca::agent
