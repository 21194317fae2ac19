// SPDX-License-Identifier: MIT
#include "agent/luks/fault.hpp"

#ifdef CRYPT_AGENT_FAULT_INJECTION
#include <cstdio>
#include <cstdlib>
#endif

namespace ca::agent::luks {

#ifdef CRYPT_AGENT_FAULT_INJECTION
namespace {
long configured_step() noexcept {
    static const long step = [] {
        const char* v = std::getenv("CRYPT_AGENT_FAULT_AFTER_STEP");
        return v ? std::strtol(v, nullptr, 10) : 0L;
    }();
    return step;
}
}  // namespace

void fault_point(const char* step_name) noexcept {
    static long count = 0;
    ++count;
    if (configured_step() > 0 && count == configured_step()) {
        std::fprintf(stderr, "fault injection: abort after step %ld (%s)\n", count, step_name);
        std::fflush(stderr);
        std::abort();
    }
}
#else
void fault_point(const char*) noexcept {}
#endif

}  // namespace ca::agent::luks
