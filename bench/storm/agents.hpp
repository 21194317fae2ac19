// SPDX-License-Identifier: MIT
// The agents under test: how each is started, measured and stopped.
// Every agent runs with RLIMIT_NOFILE 1024 (soft; hard 524288), the limit
// systemd gives a service, in its own session, with stdout and stderr going
// to a log file the harness later greps for the password.
#pragma once

#include <sys/types.h>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace storm {

struct AgentSpec {
    std::string name;                  // "crypt-agent", "floor", "tty-agent", "custom"
    std::vector<std::string> argv;     // the long-running process
    std::vector<std::string> prepare;  // run to completion before each start (cache put), stdin = password file
    std::vector<std::string> cleanup;  // run after each stop (cache flush)
    bool feed_password_lines = false;  // stdin is a pipe fed "PASSWORD\n" forever (tty agent)
    // Diagnostic mode: run under `strace -f -c -o strace_out`; empty = off.
    // strace slows the agent many times over: never mix with timing figures.
    std::string strace_out;
};

struct Paths {
    std::string ask_dir;
    std::string work_dir;       // private scratch: password file, logs
    std::string password_file;  // 0600, no trailing newline
    std::string run_dir;        // on the private tmpfs, as /run is: agents' runtime state
};

class RunningAgent {
public:
    RunningAgent() = default;
    RunningAgent(const RunningAgent&) = delete;
    RunningAgent& operator=(const RunningAgent&) = delete;
    ~RunningAgent();

    // Starts the agent; returns false (with a reason) if it could not be run.
    bool start(const AgentSpec& spec, const Paths& paths, const std::string& log_path, std::string& why);
    // SIGTERM, up to 3 s, then SIGKILL; always reaped.  Also stops the feeder.
    void stop();

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] std::int64_t started_ns() const noexcept { return started_ns_; }
    [[nodiscard]] bool alive() const;

    // CPU time of all its threads so far (ns), from /proc/PID/task/*/schedstat;
    // falls back to utime+stime clock ticks when schedstat is missing.
    [[nodiscard]] std::optional<std::int64_t> cpu_ns() const;
    // VmRSS / VmHWM in KiB from /proc/PID/status.
    [[nodiscard]] std::optional<long> rss_kib() const;
    [[nodiscard]] std::optional<long> hwm_kib() const;

private:
    pid_t pid_ = -1;
    pid_t feeder_ = -1;
    std::int64_t started_ns_ = 0;
};

// Runs a short helper (cache put / flush) to completion with stdin from
// `stdin_path` (or /dev/null).  Returns its exit status, or -1.
int run_helper(const std::vector<std::string>& argv, const std::string& stdin_path, const std::string& log_path);

// The agents --compare can use on this machine.  `floor_bin` and
// `crypt_agent_bin` may be empty (then that agent is left out).
std::vector<AgentSpec> known_agents(const std::string& floor_bin, const std::string& crypt_agent_bin,
                                    const Paths& paths);

// strace -c's summary as "name calls/questions ..." (most frequent first).
std::string syscalls_per_question(const std::string& strace_summary, unsigned questions);

// The whole contents of a (small) file, or "" when it cannot be read.
std::string read_whole_file(const std::string& path);

// Waits until the session of `pid` has been reaped or `timeout_ms` passed.
bool wait_exit(pid_t pid, int timeout_ms);

}  // namespace storm
