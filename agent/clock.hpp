// Clocks.  The cache's lifetime is on CLOCK_BOOTTIME: it keeps counting through
// suspend and is shared by the initramfs and the real root (same kernel boot).
// Question deadlines (NotAfter=) are CLOCK_MONOTONIC, as systemd writes them.
#pragma once
#include <cstdint>
#include <ctime>

namespace ca::agent {
inline std::uint64_t now_us(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000ULL + static_cast<std::uint64_t>(ts.tv_nsec) / 1000ULL;
}
inline std::uint64_t boottime_us() { return now_us(CLOCK_BOOTTIME); }
inline std::uint64_t monotonic_us() { return now_us(CLOCK_MONOTONIC); }
}  // namespace ca::agent
