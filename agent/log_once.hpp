// SPDX-License-Identifier: MIT
// "Log once" for a condition that lasts: the first occurrence is logged, the repeats are
// not, and when the condition ends the caller may say so once (the fd pressure that eases,
// a directory that is a directory again).  A line per occurrence would bury everything else
// in a storm or a retry loop.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace ca::agent {

class LogOnce {
public:
    // True the first time after construction or end(): the caller logs.
    [[nodiscard]] bool first() noexcept { return !std::exchange(on_, true); }
    // The condition ended.  True if it had been logged: the caller may say it ended.
    [[nodiscard]] bool end() noexcept { return std::exchange(on_, false); }
    [[nodiscard]] bool active() const noexcept { return on_; }

private:
    bool on_ = false;
};

// The same, once per cause: a different reason is logged again.
class LogOncePerCause {
public:
    [[nodiscard]] bool first(std::string_view cause) {
        if (on_ && cause == cause_) return false;
        cause_ = cause;
        on_ = true;
        return true;
    }
    [[nodiscard]] bool end() noexcept {
        cause_.clear();
        return std::exchange(on_, false);
    }

private:
    std::string cause_;
    bool on_ = false;
};

}  // namespace ca::agent
