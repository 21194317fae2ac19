// SPDX-License-Identifier: MIT
#include "agent/cli/wait_line.hpp"

#include <unistd.h>

#include <algorithm>

#include "agent/log.hpp"

namespace ca::agent {

namespace {
long long whole_seconds(std::chrono::steady_clock::duration d) {
    // Rounded up, so a wait of 45 s starts at "45 s left" and never shows "0 s" while it lasts.
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    return ms <= 0 ? 0 : (ms + 999) / 1000;
}
}  // namespace

WaitLine::WaitLine(std::string what, std::chrono::milliseconds limit)
    : what_(std::move(what)),
      deadline_(std::chrono::steady_clock::now() + limit),
      terminal_(::isatty(STDERR_FILENO) == 1 && !stderr_is_journal()) {
    if (!log_enabled(Level::notice)) {
        ended_ = true;  // a quiet log level: say nothing, then or later
        return;
    }
    if (!terminal_) {
        write_stderr_line(line_prefix(Level::notice) + "waiting for " + what_ + " (up to " +
                          std::to_string(whole_seconds(limit)) + " s)");
        return;
    }
    set_status_line(status());
    ticker_ = std::thread([this] { tick(); });
}

WaitLine::~WaitLine() {
    if (!ended_) end("stopped waiting for " + what_);
}

std::string WaitLine::status() const {
    // At least 1: the wait is not over until end() says so.
    const auto left = std::max(1LL, whole_seconds(deadline_ - std::chrono::steady_clock::now()));
    return line_prefix(Level::notice) + "waiting for " + what_ + " (" + std::to_string(left) + " s left)";
}

void WaitLine::tick() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) set_status_line(status());
}

void WaitLine::end(const std::string& outcome) {
    if (ended_) return;
    ended_ = true;
    if (!terminal_) {
        write_stderr_line(line_prefix(Level::notice) + outcome);
        return;
    }
    {
        const std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (ticker_.joinable()) ticker_.join();
    set_status_line("");
}

}  // namespace ca::agent
