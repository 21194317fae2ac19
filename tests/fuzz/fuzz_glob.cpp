// SPDX-License-Identifier: MIT
// libFuzzer target: the Id glob matcher.  Input: pattern NUL text.
// 1. Time bound: glob_match is iterative with one backtrack point, so a call
//    costs O(|pattern| x |text|) at worst (linear in the Id for a given pattern);
//    an exponential matcher would blow the bound below on inputs of a few KiB.
// 2. Differential: the answer must equal fnmatch(3) without flags (C locale:
//    bytes), which the header promises, for every pattern without '\' and
//    without [:class:], [=equiv=] or [.coll.] (glibc features glob_match
//    leaves out by design; those patterns are only checked for 1).
#include <fnmatch.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "proto/glob.hpp"

namespace {
constexpr auto kBound = std::chrono::milliseconds(250);

// CPU time of this thread, not wall time: the machine may be busy.
std::chrono::nanoseconds cpu_now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

bool slow(std::string_view p, std::string_view t) {
    const auto start = cpu_now();
    (void)ca::proto::glob_match(p, t);
    return cpu_now() - start > kBound;
}
bool comparable(std::string_view p) {
    for (std::string_view glibc_only : {"\\", "[:", "[=", "[."})
        if (p.find(glibc_only) != std::string_view::npos) return false;
    return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto nul = in.find('\0');
    const std::string_view p = in.substr(0, nul);
    const std::string_view t = nul == std::string_view::npos ? std::string_view{} : in.substr(nul + 1);
    const bool ours = ca::proto::glob_match(p, t);
    // Measured twice: one slow measurement can still be a cache or page-fault fluke.
    if (slow(p, t) && slow(p, t)) {
        std::fprintf(stderr, "glob_match took over 250 ms of CPU on %zu + %zu bytes\n", p.size(), t.size());
        std::abort();
    }
    if (comparable(p) && t.find('\0') == std::string_view::npos) {
        const bool theirs = fnmatch(std::string(p).c_str(), std::string(t).c_str(), 0) == 0;
        if (ours != theirs) {
            std::fprintf(stderr, "glob_match says %d, fnmatch(3) says %d\n", ours, theirs);
            std::abort();
        }
    }
    return 0;
}
