// SPDX-License-Identifier: MIT
// The three scenarios, each one run of one agent:
//   live     agent started and answering a warm-up question; then N questions
//            appear at once (at most C open at a time); CPU per question is
//            measured here, from the agent's CPU time before and after.
//   backlog  N questions already waiting; the agent is started, as a .path
//            unit starts it at boot; latency counts from the agent's start for
//            questions older than it.
//   startup  one question waiting; spawn to first answer; idle RSS 200 ms later.
#pragma once

#include "bench/storm/agents.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace storm {

enum class Scenario { live, backlog, startup };
const char* to_string(Scenario s);

struct RunConfig {
    Scenario scenario = Scenario::live;
    unsigned n = 100;
    unsigned concurrency = 0;  // 0: all N at once
    int timeout_ms = 120'000;  // whole run
    int idle_ms = 2'000;       // give up after this long with no reply once all are published
    std::string password;      // the expected answer
    bool strace = false;       // count the agent's system calls (slows it down)
};

struct RunResult {
    std::string agent;
    Scenario scenario{};
    unsigned n = 0;
    unsigned rep = 0;
    bool started = false;
    std::string error;  // why the run could not be made (agent missing, ...)
    unsigned answered = 0, wrong = 0, cancelled = 0, unanswered = 0, duplicates = 0;
    unsigned ignored = 0;  // datagrams systemd would drop: no creds, uid != 0, malformed
    double wall_ms = 0;
    std::vector<double> latency_us;  // of the right and wrong answers
    double cpu_total_us = -1;        // agent CPU over the measured part
    double cpu_per_q_us = -1;
    double first_answer_ms = -1;  // startup: spawn to first answer
    long rss_kib = -1;            // startup: idle RSS; live/backlog: at the end
    long hwm_kib = -1;            // peak RSS
    bool leaked_secret = false;   // the password appeared in the agent's log
    std::string syscalls;         // --syscalls: calls per question, from strace -c
};

RunResult run_scenario(const AgentSpec& agent, const Paths& paths, const RunConfig& cfg, unsigned rep);

}  // namespace storm
