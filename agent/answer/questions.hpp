// SPDX-License-Identifier: MIT
// The table of questions seen in the ask directory, and the one place where a question's
// state changes and the statistics count it (transition).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/answer/answered_log.hpp"
#include "agent/log_once.hpp"
#include "proto/ask_file.hpp"

namespace ca::agent {

struct AnswerStats {
    std::uint64_t answered = 0;  // datagrams delivered
    std::uint64_t ignored = 0;   // questions left to other agents
    std::uint64_t gone = 0;      // askers that vanished before we could answer
    std::uint64_t skipped = 0;   // answered before a restart (AnsweredLog), not answered again
};

// One ask file as the agent tracks it (proto::Question is what the file says).  Shared: a
// reply waiting out a full socket holds it weakly, and gives up if its file goes meanwhile.
struct TrackedAsk : std::enable_shared_from_this<TrackedAsk> {
    enum class State {
        waiting,   // ours, no reply yet (no candidate, or waiting for a source)
        held,      // AnsweredLog's grace second after a crash while answering it
        sending,   // its socket's queue was full: its reply operation backs off and tries again
        answered,  // a reply was delivered
        skipped,   // an earlier instance (or this one) answered it already
        ignored,   // left to other agents
        gone,      // its asker vanished
        retry,     // dropped for a transient reason (out of fds): read again on the next scan
    };
    std::string name;
    ino_t ino = 0;
    off_t size = 0;  // of a file we could not use, to notice when it is rewritten
    time_t mtime_s = 0;
    long mtime_ns = 0;
    proto::Question ask;
    std::string id;  // ask.id or "" when missing
    State state = State::waiting;
    LogOnce told_waiting;  // "no candidate yet"
    std::vector<std::uint64_t> sent;
    AskIdentity key{};  // which question this is, for the AnsweredLog
    bool keyed = false;
    SocketIdentity sock{};    // the socket the reply went to
    std::uint64_t watch = 0;  // its deadline in the Answerer's watchdog (NotAfter, or the
                              // grace of a held question); 0: none

    // Left to others for now, or for good: a rewrite of its file makes it new.
    [[nodiscard]] bool left_alone() const noexcept {
        return state == State::ignored || state == State::gone || state == State::retry;
    }
};

class QuestionTable {
public:
    using Ptr = std::shared_ptr<TrackedAsk>;
    // The only place a question's state changes; each final outcome is counted once per
    // question (the shutdown summary reads the counts).
    void transition(TrackedAsk& q, TrackedAsk::State to) noexcept;

    [[nodiscard]] TrackedAsk* find(const std::string& name) const;
    TrackedAsk& add(Ptr q);
    // Removes it; returns the entry so a caller can still read it.
    Ptr remove(const std::string& name);
    void clear() noexcept { table_.clear(); }
    // Drops the questions left to others (a reload may make them ours).
    void drop_left_alone();
    [[nodiscard]] std::vector<TrackedAsk*> in_state(TrackedAsk::State s) const;
    [[nodiscard]] std::vector<std::string> names_absent_from(const std::vector<std::string>& present_sorted) const;
    [[nodiscard]] const AnswerStats& stats() const noexcept { return stats_; }

private:
    std::unordered_map<std::string, Ptr> table_;
    AnswerStats stats_;
};

}  // namespace ca::agent
