// SPDX-License-Identifier: MIT
// A long wait said on standard error: what the command waits for (a card, a PIN, a
// passphrase) and for how long, as a person at a terminal or an administrator reading the
// journal needs it.
//
//   On a terminal (stderr is a tty and not the journal): a status line redrawn in place
//   every second, "crypt-agent enroll: waiting for a card in any reader (38 s left)", and
//   removed when the wait ends; log lines meanwhile print above it (agent/log.hpp).
//   Elsewhere: one line when the wait starts ("... (up to 45 s)") and one when it ends
//   (the outcome), at notice level.
//
// One wait at a time: a status line is one line.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace ca::agent {

class WaitLine {
public:
    // Starts the wait: `what` completes "waiting for ...".
    WaitLine(std::string what, std::chrono::milliseconds limit);
    // Ends it as end("stopped waiting for WHAT") would, if end() was not called.
    ~WaitLine();
    WaitLine(const WaitLine&) = delete;
    WaitLine& operator=(const WaitLine&) = delete;

    // Ends the wait; elsewhere than on a terminal `outcome` is the closing line.  Once.
    void end(const std::string& outcome);
    [[nodiscard]] bool ended() const noexcept { return ended_; }

private:
    void tick();
    [[nodiscard]] std::string status() const;

    std::string what_;
    std::chrono::steady_clock::time_point deadline_;
    bool terminal_;
    bool ended_ = false;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread ticker_;
};

}  // namespace ca::agent
