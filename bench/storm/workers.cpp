// SPDX-License-Identifier: MIT
#include "bench/storm/workers.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

namespace storm {

namespace {

enum class State : unsigned char { unpublished, open, done };

// One worker's share of a storm: its questions, at most C open, one epoll set.
class Slice {
public:
    explicit Slice(const SliceConfig& cfg)
        : cfg_(cfg),
          qs_(cfg.n),
          state_(cfg.n, State::unpublished),
          concurrency_(cfg.concurrency ? std::min(cfg.concurrency, cfg.n) : cfg.n),
          epoll_fd_(epoll_create1(EPOLL_CLOEXEC)),
          offset_ns_(realtime_offset_ns()) {
        ask_.dir = cfg.ask_dir;
    }
    ~Slice() {
        if (epoll_fd_ >= 0) close(epoll_fd_);
    }
    Slice(const Slice&) = delete;
    Slice& operator=(const Slice&) = delete;

    // Tmp files and sockets for the first C questions, not yet published, so
    // that publishing is a tight loop of renames ("N appear at once").
    bool prepare_first() {
        for (unsigned i = 0; i < concurrency_; ++i)
            if (!prepare(i)) return false;
        prepared_ = concurrency_;
        return true;
    }
    bool publish_prepared() {
        for (unsigned i = next_; i < prepared_; ++i)
            if (!publish(i)) return false;
        return true;
    }
    // Waits for replies until every question is decided, the deadline
    // passes, or nothing arrived for idle_ms once all are published.
    void pump() {
        const std::int64_t deadline = monotonic_ns() + std::int64_t{cfg_.timeout_ms} * 1'000'000;
        std::int64_t last_progress = monotonic_ns();
        epoll_event events[256];
        while (done_ < cfg_.n) {
            const std::int64_t now = monotonic_ns();
            if (now >= deadline) break;
            if (next_ == cfg_.n && now - last_progress > std::int64_t{cfg_.idle_ms} * 1'000'000) break;
            const int k = epoll_wait(epoll_fd_, events, 256, 50);
            for (int i = 0; i < k; ++i) {
                if (handle(events[i].data.u32)) last_progress = monotonic_ns();
            }
            refill();
        }
    }

    const std::vector<Record>& records() const { return records_; }
    unsigned duplicates() const { return duplicates_; }
    unsigned ignored() const { return ignored_; }
    const std::string& error() const { return error_; }

private:
    bool prepare(unsigned i) {
        if (const int e = qs_[i].prepare(ask_, cfg_.first_index + i); e != 0) {
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
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = i;
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, qs_[i].socket_fd(), &ev);
        state_[i] = State::open;
        next_ = i + 1;
        ++open_;
        return true;
    }
    void refill() {
        while (open_ < concurrency_ && next_ < cfg_.n && error_.empty()) {
            if (!prepare(next_) || !publish(next_)) return;
        }
    }
    // True if the question got a reply systemd would act on.
    bool handle(unsigned i) {
        replies_.clear();
        qs_[i].receive(cfg_.password, offset_ns_, replies_);
        bool progressed = false;
        for (const Reply& r : replies_) progressed |= account(i, r);
        if (state_[i] == State::done) {
            // Whatever is queued behind the deciding reply is a second
            // answer; systemd would never read it.
            replies_.clear();
            qs_[i].receive(cfg_.password, offset_ns_, replies_);
            for (const Reply& r : replies_) account(i, r);
            epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, qs_[i].socket_fd(), nullptr);
            qs_[i].finish();
            --open_;
        }
        return progressed;
    }
    bool account(unsigned i, const Reply& r) {
        const bool decisive = r.kind == ReplyKind::right || r.kind == ReplyKind::wrong || r.kind == ReplyKind::cancel;
        if (!decisive) {
            ++ignored_;
            return false;
        }
        if (state_[i] == State::done) {
            ++duplicates_;
            return false;
        }
        state_[i] = State::done;
        ++done_;
        records_.push_back({qs_[i].published_ns(), r.received_ns, r.kind});
        return true;
    }

    const SliceConfig& cfg_;
    AskOptions ask_;
    std::vector<Question> qs_;
    std::vector<State> state_;
    std::vector<Reply> replies_;
    std::vector<Record> records_;
    unsigned concurrency_;
    unsigned prepared_ = 0, next_ = 0, open_ = 0, done_ = 0;
    unsigned duplicates_ = 0, ignored_ = 0;
    int epoll_fd_;
    std::int64_t offset_ns_;
    std::string error_;
};

bool write_all(int fd, const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
        const ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        c += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

bool read_all(int fd, void* p, std::size_t n) {
    char* c = static_cast<char*>(p);
    while (n > 0) {
        const ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        c += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

struct Totals {
    std::uint32_t duplicates, ignored, records;
    char error[160];
};

void send_results(int out, const Slice& s) {
    Totals t{s.duplicates(), s.ignored(), static_cast<std::uint32_t>(s.records().size()), {}};
    std::strncpy(t.error, s.error().c_str(), sizeof t.error - 1);
    write_all(out, &t, sizeof t);
    write_all(out, s.records().data(), s.records().size() * sizeof(Record));
}

[[noreturn]] void worker_main(const SliceConfig& cfg, int ctl, int out) {
    std::signal(SIGTERM, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // no askers left behind if storm dies
    {
        Slice s(cfg);
        char go = 0;
        const bool prepared = s.prepare_first();
        write_all(out, prepared ? "P" : "E", 1);
        if (prepared && read_all(ctl, &go, 1) && go == 'G') {
            const bool published = s.publish_prepared();
            write_all(out, published ? "D" : "E", 1);
            if (published) s.pump();
        }
        send_results(out, s);
        // The slice's destructor withdraws every question still open,
        // in systemd's order, as timed-out askers do.
    }
    _exit(0);
}

}  // namespace

unsigned questions_per_process() {
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    const rlim_t usable = lim.rlim_cur > 128 ? lim.rlim_cur - 128 : 1;
    return static_cast<unsigned>(std::max<rlim_t>(1, std::min<rlim_t>(usable / 2, 1u << 20)));
}

Workers::~Workers() { reap(); }

bool Workers::prepare(const SliceConfig& whole, std::string& error) {
    const unsigned per = questions_per_process();
    const unsigned count = (whole.n + per - 1) / per;
    unsigned given = 0;
    for (unsigned w = 0; w < count; ++w) {
        SliceConfig cfg = whole;
        cfg.first_index = whole.first_index + given;
        cfg.n = whole.n / count + (w < whole.n % count ? 1 : 0);
        if (whole.concurrency) cfg.concurrency = std::max(1u, (whole.concurrency + count - 1) / count);
        given += cfg.n;
        int ctl[2], data[2];
        if (pipe2(ctl, O_CLOEXEC) != 0 || pipe2(data, O_CLOEXEC) != 0) {
            error = std::string("pipe: ") + std::strerror(errno);
            return false;
        }
        const pid_t pid = fork();
        if (pid == 0) {
            close(ctl[1]);
            close(data[0]);
            worker_main(cfg, ctl[0], data[1]);
        }
        close(ctl[0]);
        close(data[1]);
        workers_.push_back({pid, ctl[1], data[0]});
        if (pid < 0) {
            error = std::string("fork: ") + std::strerror(errno);
            return false;
        }
    }
    return wait_byte('P', error);
}

bool Workers::publish(std::string& error) {
    for (const auto& w : workers_) write_all(w.ctl, "G", 1);
    return wait_byte('D', error);
}

bool Workers::wait_byte(char expected, std::string& error) {
    bool ok = true;
    for (const auto& w : workers_) {
        char c = 0;
        if (!read_all(w.data, &c, 1) || c != expected) {
            ok = false;
            if (error.empty()) error = "a storm worker failed before publishing";
        }
    }
    return ok;
}

Collected Workers::collect() {
    Collected all;
    // A worker still waiting for 'G' (another one failed) sees EOF and reports.
    for (auto& w : workers_) {
        close(w.ctl);
        w.ctl = -1;
    }
    for (const auto& w : workers_) {
        Totals t{};
        if (!read_all(w.data, &t, sizeof t)) continue;
        all.duplicates += t.duplicates;
        all.ignored += t.ignored;
        if (t.error[0] && all.error.empty()) all.error.assign(t.error, strnlen(t.error, sizeof t.error));
        const std::size_t before = all.records.size();
        all.records.resize(before + t.records);
        if (!read_all(w.data, all.records.data() + before, t.records * sizeof(Record))) all.records.resize(before);
    }
    reap();
    return all;
}

void Workers::reap() {
    for (auto& w : workers_) {
        if (w.ctl >= 0) close(w.ctl);  // a worker still waiting for 'G' sees EOF and ends
        if (w.data >= 0) close(w.data);
        if (w.pid > 0) waitpid(w.pid, nullptr, 0);
    }
    workers_.clear();
}

}  // namespace storm
