// SPDX-License-Identifier: MIT
#include "bench/storm/scenario.hpp"

#include "bench/storm/asker.hpp"
#include "bench/storm/sandbox.hpp"
#include "bench/storm/workers.hpp"

#include <dirent.h>
#include <poll.h>
#include <unistd.h>
#include <algorithm>
#include <climits>
#include <cstdint>

namespace storm {

const char* to_string(Scenario s) {
    switch (s) {
    case Scenario::live: return "live";
    case Scenario::backlog: return "backlog";
    case Scenario::startup: return "startup";
    }
    return "?";
}

namespace {

// One question outside the storm: proves the agent's watch is in place
// before a live storm starts.  Any reply counts (a faulty agent is still up).
bool warm_up(const Paths& paths, const RunningAgent& agent, int timeout_ms) {
    AskOptions ask;
    ask.dir = paths.ask_dir;
    Question q;
    if (q.prepare(ask, 999'999) != 0 || q.publish() != 0) return false;
    pollfd p{q.socket_fd(), POLLIN, 0};
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (poll(&p, 1, 50) > 0) return true;
        if (!agent.alive()) return false;
    }
    return false;
}

// Waits until the agent's CPU time stops moving (it may still be handling the
// close events of answered questions), at most max_ms.
std::int64_t settled_cpu(const RunningAgent& agent, int max_ms) {
    std::int64_t last = agent.cpu_ns().value_or(-1);
    for (int waited = 0; waited < max_ms; waited += 20) {
        usleep(20'000);
        const std::int64_t now = agent.cpu_ns().value_or(-1);
        if (now == last) break;
        last = now;
    }
    return last;
}

bool log_contains(const std::string& log_path, const std::string& secret) {
    if (secret.empty()) return false;
    const std::string all = read_whole_file(log_path);
    return all.find(secret) != std::string::npos;
}

SliceConfig slice_config(const Paths& paths, const RunConfig& cfg) {
    SliceConfig sc;
    sc.ask_dir = paths.ask_dir;
    sc.password = cfg.password;
    sc.n = cfg.n;
    sc.concurrency = cfg.concurrency;
    sc.timeout_ms = cfg.timeout_ms;
    sc.idle_ms = cfg.idle_ms;
    return sc;
}

// Counts and latencies from the workers' records.  Latency runs from the
// later of publication and `base_ns` (the agent's start, for questions that
// were waiting before it existed).
void account(RunResult& r, const Collected& c, std::int64_t base_ns) {
    r.duplicates = c.duplicates;
    r.ignored = c.ignored;
    if (!c.error.empty() && r.error.empty()) r.error = c.error;
    std::int64_t first = INT64_MAX, last = 0;
    for (const Record& rec : c.records) {
        first = std::min(first, rec.published_ns);
        last = std::max(last, rec.received_ns);
        if (rec.kind == ReplyKind::cancel) {
            ++r.cancelled;
            continue;
        }
        ++(rec.kind == ReplyKind::right ? r.answered : r.wrong);
        r.latency_us.push_back(static_cast<double>(rec.received_ns - std::max(rec.published_ns, base_ns)) / 1000.0);
    }
    r.unanswered = r.n - (r.answered + r.wrong + r.cancelled);
    const std::int64_t from = std::max(first, base_ns);
    if (!c.records.empty() && last > from) r.wall_ms = static_cast<double>(last - from) / 1e6;
}

void run_live(RunningAgent& agent, const Paths& paths, const RunConfig& cfg, RunResult& r) {
    if (!warm_up(paths, agent, 10'000)) {
        r.error = "agent did not answer a warm-up question within 10 s";
        return;
    }
    const std::int64_t cpu0 = settled_cpu(agent, 200);
    Workers w;
    if (w.prepare(slice_config(paths, cfg), r.error)) (void)w.publish(r.error);
    const Collected c = w.collect();
    const std::int64_t cpu1 = settled_cpu(agent, 1000);
    if (cpu0 >= 0 && cpu1 >= 0) {
        r.cpu_total_us = static_cast<double>(cpu1 - cpu0) / 1000.0;
        r.cpu_per_q_us = r.cpu_total_us / cfg.n;
    }
    account(r, c, 0);
}

void run_backlog(RunningAgent& agent, const AgentSpec& spec, const Paths& paths, const RunConfig& cfg, RunResult& r,
                 const std::string& log) {
    Workers w;
    if (w.prepare(slice_config(paths, cfg), r.error) && w.publish(r.error) && agent.start(spec, paths, log, r.error)) {
        r.started = true;
    }
    const Collected c = w.collect();
    // Includes the agent's own start-up: at boot that is part of the bill.
    if (r.started) {
        if (const std::int64_t cpu = settled_cpu(agent, 1000); cpu >= 0) {
            r.cpu_total_us = static_cast<double>(cpu) / 1000.0;
            r.cpu_per_q_us = r.cpu_total_us / cfg.n;
        }
    }
    account(r, c, r.started ? agent.started_ns() : 0);
}

void run_startup(RunningAgent& agent, const AgentSpec& spec, const Paths& paths, const RunConfig& cfg, RunResult& r,
                 const std::string& log) {
    run_backlog(agent, spec, paths, cfg, r, log);
    if (!r.latency_us.empty()) r.first_answer_ms = *std::min_element(r.latency_us.begin(), r.latency_us.end()) / 1000.0;
    usleep(200'000);  // let it settle into its idle state
    r.rss_kib = agent.rss_kib().value_or(-1);
}

}  // namespace

RunResult run_scenario(const AgentSpec& base, const Paths& paths, const RunConfig& cfg, unsigned rep) {
    AgentSpec spec = base;
    RunResult r;
    r.agent = spec.name;
    r.scenario = cfg.scenario;
    r.n = cfg.n;
    r.rep = rep;
    const std::string log = paths.work_dir + "/" + spec.name + "-" + to_string(cfg.scenario) + "-" +
                            std::to_string(cfg.n) + "-" + std::to_string(rep) + ".log";
    if (cfg.strace) spec.strace_out = log + ".strace";
    RunningAgent agent;
    if (cfg.scenario == Scenario::live) {
        if (agent.start(spec, paths, log, r.error)) {
            r.started = true;
            run_live(agent, paths, cfg, r);
        }
    } else if (cfg.scenario == Scenario::backlog) {
        run_backlog(agent, spec, paths, cfg, r, log);
    } else {
        run_startup(agent, spec, paths, cfg, r, log);
    }
    if (r.started && r.rss_kib < 0) r.rss_kib = agent.rss_kib().value_or(-1);
    if (r.started) r.hwm_kib = agent.hwm_kib().value_or(-1);
    if (r.started && !agent.alive() && r.error.empty()) r.error = "agent exited during the run";
    agent.stop();
    if (!spec.cleanup.empty()) (void)run_helper(spec.cleanup, "", log);
    // Every run starts as a boot does, with an empty /run: crypt-agent's answered record kept
    // 10,000 records of gone questions from the run before, which the next start read back
    // (1 MiB more RSS in a startup run after a storm).
    if (DIR* d = opendir(paths.run_dir.c_str())) {
        std::vector<std::string> subdirs;
        while (dirent* de = readdir(d))
            if (de->d_name[0] != '.') subdirs.push_back(paths.run_dir + "/" + de->d_name);
        closedir(d);
        for (const auto& sub : subdirs) remove_tree(sub);
    }
    if (r.unanswered == 0 && r.answered + r.wrong + r.cancelled == 0) r.unanswered = r.n;
    r.leaked_secret = log_contains(log, cfg.password);
    if (cfg.strace) r.syscalls = syscalls_per_question(spec.strace_out, cfg.n);
    return r;
}

}  // namespace storm
