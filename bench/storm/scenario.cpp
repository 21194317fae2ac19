#include "bench/storm/scenario.hpp"

#include "bench/storm/asker.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sys/epoll.h>
#include <poll.h>
#include <unistd.h>

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

enum class State : unsigned char { unpublished, open, done };

// The asker side of one run: N questions, at most C open, one epoll set.
class Storm {
public:
    Storm(const Paths& paths, const RunConfig& cfg, RunResult& result)
        : cfg_(cfg), result_(result), qs_(cfg.n), state_(cfg.n, State::unpublished),
          concurrency_(cfg.concurrency ? std::min(cfg.concurrency, cfg.n) : cfg.n),
          epoll_fd_(epoll_create1(EPOLL_CLOEXEC)), offset_ns_(realtime_offset_ns()) {
        ask_.dir = paths.ask_dir;
    }
    ~Storm() {
        if (epoll_fd_ >= 0)
            close(epoll_fd_);
    }
    Storm(const Storm&) = delete;
    Storm& operator=(const Storm&) = delete;

    // Makes tmp files and sockets for the first C questions, without
    // publishing, so that publishing them is a tight loop of renames.
    bool prepare_first() {
        for (unsigned i = 0; i < concurrency_; ++i)
            if (!prepare(i))
                return false;
        prepared_ = concurrency_;
        return true;
    }
    bool publish_prepared() {
        for (unsigned i = next_; i < prepared_; ++i)
            if (!publish(i))
                return false;
        return true;
    }
    // Latency of questions published before the agent started counts from its start.
    void set_latency_base(std::int64_t ns) { base_ns_ = ns; }

    // Waits for replies until every question is done, the deadline passes, or
    // nothing arrived for idle_ms once all are published.
    void pump(std::int64_t deadline_ns) {
        std::int64_t last_progress = monotonic_ns();
        epoll_event events[256];
        while (done_ < cfg_.n) {
            const std::int64_t now = monotonic_ns();
            if (now >= deadline_ns)
                break;
            if (next_ == cfg_.n && now - last_progress > std::int64_t{cfg_.idle_ms} * 1'000'000)
                break;
            const int k = epoll_wait(epoll_fd_, events, 256, 50);
            for (int i = 0; i < k; ++i) {
                if (handle(events[i].data.u32))
                    last_progress = monotonic_ns();
            }
            refill();
        }
    }

    [[nodiscard]] std::int64_t first_published_ns() const { return first_published_ns_; }
    [[nodiscard]] std::int64_t last_received_ns() const { return last_received_ns_; }
    [[nodiscard]] std::string error() const { return error_; }

private:
    bool prepare(unsigned i) {
        if (const int e = qs_[i].prepare(ask_, i); e != 0) {
            error_ = std::string("cannot create question: ") + std::strerror(e);
            return false;
        }
        return true;
    }
    bool publish(unsigned i) {
        if (const int e = qs_[i].publish(); e != 0) {
            error_ = std::string("cannot rename question: ") + std::strerror(e);
            return false;
        }
        if (first_published_ns_ == 0)
            first_published_ns_ = qs_[i].published_ns();
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = i;
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, qs_[i].socket_fd(), &ev);
        state_[i] = State::open;
        next_ = i + 1;
        ++open_;
        return true;
    }
    // Keeps C questions open while any remain.
    void refill() {
        while (open_ < concurrency_ && next_ < cfg_.n && error_.empty()) {
            if (!prepare(next_) || !publish(next_))
                return;
        }
    }
    // Returns true if the question got a reply systemd would act on.
    bool handle(unsigned i) {
        replies_.clear();
        qs_[i].receive(cfg_.password, offset_ns_, replies_);
        bool progressed = false;
        for (const Reply& r : replies_)
            progressed |= account(i, r);
        if (state_[i] == State::done) {
            // Anything already queued behind the deciding reply is a second
            // answer; systemd would never read it.
            replies_.clear();
            qs_[i].receive(cfg_.password, offset_ns_, replies_);
            for (const Reply& r : replies_)
                account(i, r);
            epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, qs_[i].socket_fd(), nullptr);
            qs_[i].finish();
            --open_;
        }
        return progressed;
    }
    bool account(unsigned i, const Reply& r) {
        const bool decisive = r.kind == ReplyKind::right || r.kind == ReplyKind::wrong || r.kind == ReplyKind::cancel;
        if (!decisive) {
            ++result_.ignored;
            return false;
        }
        if (state_[i] == State::done) {
            ++result_.duplicates;
            return false;
        }
        state_[i] = State::done;
        ++done_;
        last_received_ns_ = std::max(last_received_ns_, r.received_ns);
        if (r.kind == ReplyKind::cancel) {
            ++result_.cancelled;
            return true;
        }
        ++(r.kind == ReplyKind::right ? result_.answered : result_.wrong);
        const std::int64_t from = std::max(qs_[i].published_ns(), base_ns_);
        result_.latency_us.push_back(static_cast<double>(r.received_ns - from) / 1000.0);
        return true;
    }

    const RunConfig& cfg_;
    RunResult& result_;
    AskOptions ask_;
    std::vector<Question> qs_;
    std::vector<State> state_;
    std::vector<Reply> replies_;
    unsigned concurrency_;
    unsigned prepared_ = 0, next_ = 0, open_ = 0, done_ = 0;
    int epoll_fd_;
    std::int64_t offset_ns_;
    std::int64_t base_ns_ = 0;
    std::int64_t first_published_ns_ = 0, last_received_ns_ = 0;
    std::string error_;
};

// One question outside the storm: proves the agent's watch is in place
// before a live storm starts.  Any reply counts (a faulty agent is still up).
bool warm_up(const Paths& paths, const RunningAgent& agent, int timeout_ms) {
    AskOptions ask;
    ask.dir = paths.ask_dir;
    Question q;
    if (q.prepare(ask, 999'999) != 0 || q.publish() != 0)
        return false;
    pollfd p{q.socket_fd(), POLLIN, 0};
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (poll(&p, 1, 50) > 0)
            return true;
        if (!agent.alive())
            return false;
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
        if (now == last)
            break;
        last = now;
    }
    return last;
}

bool log_contains(const std::string& log_path, const std::string& secret) {
    if (secret.empty())
        return false;
    const std::string all = read_whole_file(log_path);
    return all.find(secret) != std::string::npos;
}

void finish_result(RunResult& r, const Storm& s, std::int64_t from_ns) {
    r.unanswered = r.n - (r.answered + r.wrong + r.cancelled);
    if (s.last_received_ns() > from_ns)
        r.wall_ms = static_cast<double>(s.last_received_ns() - from_ns) / 1e6;
    if (!s.error().empty() && r.error.empty())
        r.error = s.error();
}

void run_live(Storm& s, RunningAgent& agent, const Paths& paths, const RunConfig& cfg, RunResult& r) {
    if (!warm_up(paths, agent, 10'000)) {
        r.error = "agent did not answer a warm-up question within 10 s";
        return;
    }
    const std::int64_t cpu0 = settled_cpu(agent, 200);
    if (!s.prepare_first() || !s.publish_prepared())
        return;
    s.pump(monotonic_ns() + std::int64_t{cfg.timeout_ms} * 1'000'000);
    const std::int64_t cpu1 = settled_cpu(agent, 1000);
    if (cpu0 >= 0 && cpu1 >= 0) {
        r.cpu_total_us = static_cast<double>(cpu1 - cpu0) / 1000.0;
        r.cpu_per_q_us = r.cpu_total_us / cfg.n;
    }
    finish_result(r, s, s.first_published_ns());
}

void run_backlog(Storm& s, RunningAgent& agent, const AgentSpec& spec, const Paths& paths,
                 const RunConfig& cfg, RunResult& r, const std::string& log) {
    if (!s.prepare_first() || !s.publish_prepared())
        return;
    if (!agent.start(spec, paths, log, r.error))
        return;
    r.started = true;
    s.set_latency_base(agent.started_ns());
    s.pump(monotonic_ns() + std::int64_t{cfg.timeout_ms} * 1'000'000);
    // Includes the agent's own start-up: at boot that is part of the bill.
    if (const std::int64_t cpu = settled_cpu(agent, 1000); cpu >= 0) {
        r.cpu_total_us = static_cast<double>(cpu) / 1000.0;
        r.cpu_per_q_us = r.cpu_total_us / cfg.n;
    }
    finish_result(r, s, agent.started_ns());
}

void run_startup(Storm& s, RunningAgent& agent, const AgentSpec& spec, const Paths& paths,
                 const RunConfig& cfg, RunResult& r, const std::string& log) {
    run_backlog(s, agent, spec, paths, cfg, r, log);
    if (!r.latency_us.empty())
        r.first_answer_ms = *std::min_element(r.latency_us.begin(), r.latency_us.end()) / 1000.0;
    usleep(200'000);  // let it settle into its idle state
    r.rss_kib = agent.rss_kib().value_or(-1);
}

}  // namespace

RunResult run_scenario(const AgentSpec& spec, const Paths& paths, const RunConfig& cfg, unsigned rep) {
    RunResult r;
    r.agent = spec.name;
    r.scenario = cfg.scenario;
    r.n = cfg.n;
    r.rep = rep;
    const std::string log = paths.work_dir + "/" + spec.name + "-" + to_string(cfg.scenario) + "-" +
                            std::to_string(cfg.n) + "-" + std::to_string(rep) + ".log";
    RunningAgent agent;
    {
        Storm s(paths, cfg, r);
        if (cfg.scenario == Scenario::live) {
            if (agent.start(spec, paths, log, r.error)) {
                r.started = true;
                run_live(s, agent, paths, cfg, r);
            }
        } else if (cfg.scenario == Scenario::backlog) {
            run_backlog(s, agent, spec, paths, cfg, r, log);
        } else {
            run_startup(s, agent, spec, paths, cfg, r, log);
        }
        if (r.started && r.rss_kib < 0)
            r.rss_kib = agent.rss_kib().value_or(-1);
        if (r.started)
            r.hwm_kib = agent.hwm_kib().value_or(-1);
        if (r.started && !agent.alive() && r.error.empty())
            r.error = "agent exited during the run";
        // The storm's questions are withdrawn (unlinked) here, before the
        // agent stops, as askers that time out would withdraw them.
    }
    agent.stop();
    if (!spec.cleanup.empty())
        (void)run_helper(spec.cleanup, "", log);
    if (r.unanswered == 0 && r.answered + r.wrong + r.cancelled == 0)
        r.unanswered = r.n;
    r.leaked_secret = log_contains(log, cfg.password);
    return r;
}

}  // namespace storm
