// SPDX-License-Identifier: MIT
// Clocks.  The cache's lifetime is on CLOCK_BOOTTIME: it keeps counting through
// suspend and is shared by the initramfs and the real root (same kernel boot).
// Question deadlines (NotAfter=) are CLOCK_MONOTONIC, as systemd writes them.
#pragma once
#include <chrono>
#include <cstdint>
#include <ctime>
#include <limits>

namespace ca::agent {
inline std::uint64_t now_us(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000ULL + static_cast<std::uint64_t>(ts.tv_nsec) / 1000ULL;
}
inline std::uint64_t boottime_us() { return now_us(CLOCK_BOOTTIME); }
inline std::uint64_t monotonic_us() { return now_us(CLOCK_MONOTONIC); }

// NotAfter= (CLOCK_MONOTONIC µs, which steady_clock reads on Linux) as a timer deadline.
// steady_clock counts nanoseconds in 64 signed bits: past ~9.2e15 µs (292 years) the plain
// conversion overflows and a far-future deadline (`--timeout=300y`) lands in the past, so the
// question would be dropped at once.  Saturate instead.  0 and UINT64_MAX mean "never".
inline std::chrono::steady_clock::time_point deadline_of(std::uint64_t not_after_us) noexcept {
    using Clock = std::chrono::steady_clock;
    constexpr auto max_us = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::duration::max()).count());
    if (not_after_us == 0 || not_after_us == std::numeric_limits<std::uint64_t>::max() || not_after_us > max_us)
        return Clock::time_point::max();
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
        std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(not_after_us))));
}
}  // namespace ca::agent
