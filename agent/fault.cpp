// SPDX-License-Identifier: MIT
// Compiled only when CRYPT_AGENT_FAULT_INJECTION is ON (see fault.hpp).  A point reports on
// stderr directly, not through the agent's log: agent/luks sits below the log, and the line
// must be out before the abort() or SIGKILL.
#include "agent/fault.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ca::agent::fault {

namespace {
void report(const char* what, unsigned long count, const char* detail) noexcept {
    std::fprintf(stderr, "fault injection: %s %lu%s\n", what, count, detail);
    std::fflush(stderr);
}
}  // namespace

void after_step(const char* step_name) noexcept {
    static const unsigned long step = [] {
        const char* v = std::getenv("CRYPT_AGENT_FAULT_AFTER_STEP");
        return v != nullptr ? std::strtoul(v, nullptr, 10) : 0UL;
    }();
    static unsigned long count = 0;
    ++count;
    if (step > 0 && count == step) {
        char detail[128];
        std::snprintf(detail, sizeof detail, " (%s)", step_name);
        report("abort after step", count, detail);
        std::abort();
    }
}

bool no_keyring() noexcept {
    const char* v = std::getenv("CRYPT_AGENT_FAULT_NO_KEYRING");
    return v != nullptr && v[0] == '1';
}

void kill_at_send(bool after) noexcept {
    struct Spec {
        bool valid = false;
        bool after = false;
        unsigned long n = 0;
    };
    static const Spec spec = [] {
        const char* v = std::getenv("CRYPT_AGENT_FAULT_SIGKILL_AT_SEND");
        const char* colon = v != nullptr ? std::strchr(v, ':') : nullptr;
        if (colon == nullptr) return Spec{};
        const bool at_after = static_cast<std::size_t>(colon - v) == 5 && std::strncmp(v, "after", 5) == 0;
        return Spec{true, at_after, std::strtoul(colon + 1, nullptr, 10)};
    }();
    static unsigned long sends = 0;
    if (!spec.valid) return;
    if (!after) ++sends;
    if (sends == spec.n && spec.after == after) {
        report(after ? "SIGKILL after sending reply" : "SIGKILL before sending reply", sends, "");
        std::raise(SIGKILL);
    }
}

bool no_library(const char* soname) noexcept {
    const char* hide = std::getenv("CRYPT_AGENT_FAULT_NO_LIBRARY");
    return hide != nullptr && std::strcmp(hide, soname) == 0;
}

}  // namespace ca::agent::fault
