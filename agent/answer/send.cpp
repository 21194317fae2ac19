// SPDX-License-Identifier: MIT
// Sending one reply: encode into the one locked buffer, check where Socket= leads, record
// the answer (AnsweredLog) before the datagram goes, and, when the asker's queue is full,
// hand the rest to async_resend (askdir/resend.hpp).
#include <sys/stat.h>

#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/answer/describe.hpp"
#include "agent/answer/flow.hpp"
#include "agent/askdir/files.hpp"
#include "agent/askdir/resend.hpp"
#include "agent/clock.hpp"
#include "agent/daemon/notify.hpp"
#include "agent/fault.hpp"
#include "agent/log.hpp"
#include "proto/reply.hpp"

namespace ca::agent {

namespace {

// The first n bytes of the one locked reply buffer are wiped when a send path leaves,
// whichever way it leaves.
struct WipeOnExit {
    proto::Secret& buf;
    std::size_t n;
    WipeOnExit(proto::Secret& b, std::size_t len) : buf(b), n(len) {}
    WipeOnExit(const WipeOnExit&) = delete;
    WipeOnExit& operator=(const WipeOnExit&) = delete;
    ~WipeOnExit() { proto::wipe(buf.data(), n); }
};

}  // namespace

void Answerer::send_to(TrackedAsk& q, std::vector<std::size_t> chosen) {
    auto& cache = *cache_.payload();
    std::vector<const proto::Secret*> ptrs;
    for (auto i : chosen) ptrs.push_back(&cache.candidates[i].value);
    const auto fit = proto::candidates_that_fit(ptrs);
    if (fit == 0) {
        questions_.transition(q, State::ignored);
        CA_LOG(err) << describe(q.name, q.id) << ": no cached candidate fits in one reply (2049 bytes), ignoring";
        return;
    }
    ptrs.resize(fit);
    chosen.resize(fit);
    // One locked buffer serves every reply: no mmap/mlock/munlock/munmap per question.
    if (reply_buf_.size() < proto::kReplyMaxSize) reply_buf_ = proto::Secret(proto::kReplyMaxSize);
    auto len = proto::encode_reply_into(ptrs, reply_buf_.bytes());
    if (!len) {
        questions_.transition(q, State::ignored);
        CA_LOG(err) << describe(q.name, q.id) << ": cannot encode a reply: " << proto::to_string(len.error());
        return;
    }
    const WipeOnExit wipe_after{reply_buf_, *len};
    // The asker's PID is not looked at first: the send tells us if it is gone
    // (ECONNREFUSED: nobody holds its socket any more).
    struct stat sock_st {};
    auto target = resolve_socket(dir_.dir_stat(), q.ask.socket, owner_, dir_.dir_fd(), dir_.dir_path(), &sock_st);
    if (!target && (target.error().find("Too many open files") != std::string::npos)) {
        CA_LOG(warning) << describe(q.name, q.id) << ": " << target.error() << "; will retry";
        questions_.transition(q, State::retry);  // the rescan reads it again
        dir_.rescan_later();
        return;
    }
    if (!target) {
        questions_.transition(q, State::ignored);
        CA_LOG(warning) << describe(q.name, q.id) << ": " << target.error() << "; not sending anything there";
        return;
    }
    // Recorded before the send: a crash after it can never lead to a second reply (AnsweredLog).
    q.sock = SocketIdentity{static_cast<std::uint64_t>(sock_st.st_dev), static_cast<std::uint64_t>(sock_st.st_ino)};
    record_answer(q);
    fault::kill_at_send(false);
    int err = 0;
    const auto status = send_datagram(sender_.get(), *target, reply_buf_.bytes().first(*len), err);
    fault::kill_at_send(true);
    if (status != SendStatus::sent && q.keyed) answered_.erase(q.key);  // nothing delivered: no claim
    const std::size_t first = q.sent.size();
    for (auto i : chosen) q.sent.push_back(cache_.hashes()[i]);
    switch (status) {
    case SendStatus::sent: break;
    case SendStatus::gone:
        q.sent.resize(first);
        questions_.transition(q, State::gone);
        CA_LOG(debug) << describe(q.name, q.id) << ": asker gone (" << std::strerror(err) << ")";
        return;
    case SendStatus::refused:
        q.sent.resize(first);
        questions_.transition(q, State::ignored);
        CA_LOG(warning) << describe(q.name, q.id) << ": cannot send to its socket: " << std::strerror(err)
                        << ", ignoring";
        return;
    case SendStatus::again:
        // The asker's receive queue is full: send the same candidates again later.
        questions_.transition(q, State::sending);
        resend_later(q, std::move(*target), first);
        return;
    }
    q.watch = 0;  // its deadline, if armed, no longer matters
    delivered(q, first);
    if (log_enabled(Level::info)) {
        std::string fps;  // keyed 4-hex fingerprints: tell candidates apart, reveal nothing
        for (auto i : chosen) fps += (fps.empty() ? "" : ",") + cache_.fingerprint(cache.candidates[i].value);
        CA_LOG(info) << describe(q.name, q.id) << ": answered with " << chosen.size() << " candidate(s) [" << fps
                     << "]";
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

void Answerer::resend_later(TrackedAsk& q, SendTarget target, std::size_t first) {
    auto attempt = [this, weak = q.weak_from_this(), target = std::move(target), first]() -> Attempt {
        auto held = weak.lock();
        if (!held || stopping_) return Attempt::gave_up;  // its file went, or we are stopping
        auto& qq = *held;
        if (qq.ask.has_deadline() && monotonic_us() >= qq.ask.not_after_us) {
            CA_LOG(info) << describe(qq.name, qq.id) << ": deadline passed while its socket stayed full";
            questions_.transition(qq, State::ignored);
            return Attempt::gave_up;
        }
        std::vector<const proto::Secret*> ptrs;
        for (std::size_t k = first; k < qq.sent.size(); ++k)
            if (const auto* v = cache_.value_of(qq.sent[k])) ptrs.push_back(v);
        std::optional<std::size_t> len;
        if (!ptrs.empty() && ptrs.size() == qq.sent.size() - first)
            if (auto n = proto::encode_reply_into(ptrs, reply_buf_.bytes())) len = *n;
        if (!len) {
            CA_LOG(info) << describe(qq.name, qq.id) << ": its candidates left the cache while its socket stayed full";
            questions_.transition(qq, State::ignored);
            return Attempt::gave_up;
        }
        const WipeOnExit wipe_after{reply_buf_, *len};
        record_answer(qq);
        int err = 0;
        const auto status = send_datagram(sender_.get(), target, reply_buf_.bytes().first(*len), err);
        if (status != SendStatus::sent && qq.keyed) answered_.erase(qq.key);
        switch (status) {
        case SendStatus::again: return Attempt::again;
        case SendStatus::sent:
            delivered(qq, first);
            CA_LOG(info) << describe(qq.name, qq.id) << ": answered after its socket drained";
            return Attempt::sent;
        case SendStatus::gone:
        case SendStatus::refused: break;
        }
        CA_LOG(info) << describe(qq.name, qq.id) << ": asker gone before its socket drained";
        questions_.transition(qq, status == SendStatus::gone ? State::gone : State::ignored);
        return Attempt::gone;
    };
    // The outcome is recorded by the attempt that ends it; nothing is left to do here.
    async_resend(io_.get_executor(), std::move(attempt), [](Attempt) {});
}

}  // namespace ca::agent
