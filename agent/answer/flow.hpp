// SPDX-License-Identifier: MIT
// One question's way, from a name in the ask directory to its outcome:
//   read and check the ask file -> already answered before a restart? -> its Id ours? ->
//   learn from AcceptCached=0 -> choose candidates (cache, else ask the sources) -> send ->
//   remember what was sent (ledger, AnsweredLog) -> the file goes: it worked.
// It receives the watcher's batches (DirListener) and calls down into the cache, the
// sources and the sender; completions (a reply's outcome, a source's delivery) come back here.
#pragma once

#include <boost/asio/io_context.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/answer/answered_log.hpp"
#include "agent/answer/ledger.hpp"
#include "agent/answer/questions.hpp"
#include "agent/answer/watchdog.hpp"
#include "agent/askdir/files.hpp"
#include "agent/askdir/send_op.hpp"
#include "agent/askdir/watcher.hpp"
#include "agent/cache/boot_cache.hpp"
#include "agent/cache/systemd_entry.hpp"
#include "agent/config/options.hpp"
#include "agent/fd.hpp"
#include "agent/log_once.hpp"
#include "agent/sources/source.hpp"
#include "proto/secret.hpp"

namespace ca::agent {

class Answerer : public DirListener {
public:
    Answerer(boost::asio::io_context& io, const GlobalOptions& o, uid_t owner, Watcher& dir, BootCache& cache,
             SystemdEntry& entry, SourceList& sources);

    // Opens the reply socket and the AnsweredLog.  Throws std::runtime_error.
    void open();
    void stop();
    // A reload: questions left to others under the old patterns may be ours now.
    void forget_left_alone() { questions_.drop_left_alone(); }

    void on_wake(const DirWake& wake) override;
    void on_lost() override { questions_.clear(); }

    // Candidates arrived (a source, a harvest): look again at every waiting question.
    void revisit_waiting();
    // Before a save: the sends recorded so far have returned.
    void confirm_sends() { answered_.confirm(); }
    [[nodiscard]] Ledger& ledger() noexcept { return ledger_; }
    [[nodiscard]] const AnswerStats& stats() const noexcept { return questions_.stats(); }

private:
    using State = TrackedAsk::State;
    // flow.cpp
    void on_listing(const DirWake& wake);
    void on_touched();
    void process_name(const std::string& name, ino_t hint_ino);
    void consider(TrackedAsk& q);
    bool asker_gone(TrackedAsk& q);
    bool answered_before(TrackedAsk& q);
    void hold_uncertain(TrackedAsk& q);
    void learn_from_retry(TrackedAsk& q, IdState& ids);
    void answer_or_wait(TrackedAsk& q);
    void arm_deadline(TrackedAsk& q);
    void on_deadline(const std::string& name);
    // Drops a question whose file went; returns the state it was in (nothing if unknown).
    std::optional<State> forget(const std::string& name);
    // send.cpp
    void send_to(TrackedAsk& q, std::vector<std::size_t> chosen);
    SendResult try_reply(TrackedAsk& q, std::size_t first, std::optional<SendTarget>& target, unsigned tries);
    void replied(TrackedAsk& q, std::size_t first, SendResult r);
    void record_answer(TrackedAsk& q);
    void delivered(TrackedAsk& q, std::size_t first);

    boost::asio::io_context& io_;
    const GlobalOptions& o_;
    uid_t owner_;
    Watcher& dir_;
    BootCache& cache_;
    SystemdEntry& entry_;
    SourceList& sources_;
    Fd sender_;
    AnsweredLog answered_;  // which questions got a reply, for the instance after a crash
    LogOnce answered_warned_;
    LogOnce evicted_warned_;
    proto::Secret reply_buf_;  // locked, reused for every datagram, wiped after each send
    QuestionTable questions_;
    Watchdog deadlines_;  // every question's NotAfter and grace second, on one timer
    Ledger ledger_;
    bool stopping_ = false;
    // systemd's keyring entry was read during the batch being handled: an AcceptCached=0
    // question forces a read, once per batch, not once per question.
    bool harvested_in_batch_ = false;
};

}  // namespace ca::agent
