// SPDX-License-Identifier: MIT
#include "bench/storm/agents.hpp"

#include "bench/storm/asker.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace storm {

namespace {

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
    std::vector<char*> out;
    out.reserve(argv.size() + 1);
    for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
    out.push_back(nullptr);
    return out;
}

// The environment of an agent: ours minus anything that could make it talk
// to the real system manager.
std::vector<std::string> agent_environment() {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        const std::string_view v(*e);
        if (v.starts_with("NOTIFY_SOCKET=") || v.starts_with("LISTEN_") || v.starts_with("WATCHDOG_")) continue;
        env.emplace_back(v);
    }
    return env;
}

// Everything between fork and exec uses async-signal-safe calls only.
[[noreturn]] void exec_child(char* const* argv, char* const* envp, int in_fd, int out_fd) {
    setsid();
    // An agent must not outlive the harness (it would keep answering in an
    // orphaned namespace): die with it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const rlimit nofile{1024, 524288};
    setrlimit(RLIMIT_NOFILE, &nofile);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (in_fd >= 0) dup2(in_fd, STDIN_FILENO);
    if (out_fd >= 0) {
        dup2(out_fd, STDOUT_FILENO);
        dup2(out_fd, STDERR_FILENO);
    }
    execve(argv[0], argv, envp);
    _exit(127);
}

pid_t spawn(const std::vector<std::string>& argv, int in_fd, int out_fd) {
    auto args = c_argv(argv);
    auto env_strings = agent_environment();
    auto envp = c_argv(env_strings);
    const pid_t pid = fork();
    if (pid == 0) exec_child(args.data(), envp.data(), in_fd, out_fd);
    return pid;
}

// A child that writes the password as lines into a pipe until the reader
// goes: the tty agent reads one line per question from stdin.  The password
// is read from its file, never passed on a command line.
pid_t start_feeder(const std::string& password_file, int write_fd) {
    std::string line;
    {
        std::ifstream in(password_file, std::ios::binary);
        std::getline(in, line, '\0');
    }
    line += '\n';
    std::string block;
    while (block.size() < 4096) block += line;
    const pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGPIPE, SIG_DFL);
        for (;;) {
            if (write(write_fd, block.data(), block.size()) < 0 && errno != EINTR) _exit(0);
        }
    }
    explicit_bzero(block.data(), block.size());
    explicit_bzero(line.data(), line.size());
    return pid;
}

std::optional<long> status_field_kib(pid_t pid, const char* key) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    const std::size_t klen = std::strlen(key);
    while (std::getline(in, line)) {
        if (line.compare(0, klen, key) == 0) return std::strtol(line.c_str() + klen, nullptr, 10);
    }
    return std::nullopt;
}

std::optional<std::int64_t> schedstat_ns(pid_t pid) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = opendir(dir.c_str());
    if (!d) return std::nullopt;
    std::int64_t sum = 0;
    bool any = false;
    while (dirent* de = readdir(d)) {
        if (de->d_name[0] == '.') continue;
        std::ifstream in(dir + "/" + de->d_name + "/schedstat");
        long long run_ns = 0;
        if (in >> run_ns) {
            sum += run_ns;
            any = true;
        }
    }
    closedir(d);
    return any ? std::optional<std::int64_t>(sum) : std::nullopt;
}

std::optional<std::int64_t> stat_ticks_ns(pid_t pid) {
    const std::string all = read_whole_file("/proc/" + std::to_string(pid) + "/stat");
    const auto close_paren = all.rfind(')');
    if (close_paren == std::string::npos) return std::nullopt;
    std::istringstream fields(all.substr(close_paren + 2));
    std::string f;
    long long utime = 0, stime = 0;
    for (int i = 3; fields >> f; ++i) {  // field 3 is state
        if (i == 14) utime = std::atoll(f.c_str());
        if (i == 15) {
            stime = std::atoll(f.c_str());
            return (utime + stime) * (1'000'000'000LL / sysconf(_SC_CLK_TCK));
        }
    }
    return std::nullopt;
}

}  // namespace

std::string read_whole_file(const std::string& path) {
    std::string out;
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return out;
    char buf[65536];
    for (;;) {
        const ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    close(fd);
    return out;
}

std::string syscalls_per_question(const std::string& strace_summary, unsigned questions) {
    // Rows: "% time  seconds  usecs/call  calls  [errors]  syscall"; the
    // errors column is blank when there were none.
    std::vector<std::pair<long, std::string>> rows;
    std::istringstream in(read_whole_file(strace_summary));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::vector<std::string> w;
        for (std::string x; f >> x;) w.push_back(x);
        if (w.size() < 5 || w.back() == "total" || w[0].find_first_not_of("0123456789.") != std::string::npos) continue;
        rows.emplace_back(std::atol(w[3].c_str()), w.back());
    }
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::string out;
    char buf[96];
    double total = 0;
    for (const auto& [calls, name] : rows) {
        const double per = static_cast<double>(calls) / questions;
        total += per;
        if (per >= 0.05) {
            std::snprintf(buf, sizeof buf, " %s %.2f", name.c_str(), per);
            out += buf;
        }
    }
    std::snprintf(buf, sizeof buf, "total %.1f:", total);
    return rows.empty() ? std::string() : buf + out;
}

bool wait_exit(pid_t pid, int timeout_ms) {
    for (int waited = 0; waited <= timeout_ms; waited += 5) {
        const pid_t r = waitpid(pid, nullptr, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) return true;
        usleep(5000);
    }
    return false;
}

int run_helper(const std::vector<std::string>& argv, const std::string& stdin_path, const std::string& log_path) {
    const int in = open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
    const int out = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    const pid_t pid = spawn(argv, in, out);
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    if (pid < 0) return -1;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

RunningAgent::~RunningAgent() { stop(); }

bool RunningAgent::start(const AgentSpec& spec, const Paths& paths, const std::string& log_path, std::string& why) {
    if (access(spec.argv.at(0).c_str(), X_OK) != 0) {
        why = spec.argv[0] + " is not executable";
        return false;
    }
    if (!spec.prepare.empty()) {
        const int rc = run_helper(spec.prepare, paths.password_file, log_path);
        if (rc != 0) {
            why = "preparation step exited with " + std::to_string(rc) + " (see " + log_path + ")";
            return false;
        }
    }
    const int out = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pipe_fds[2] = {-1, -1};
    if (spec.feed_password_lines && pipe2(pipe_fds, O_CLOEXEC) == 0) {
        close(in);
        in = pipe_fds[0];
        feeder_ = start_feeder(paths.password_file, pipe_fds[1]);
    }
    started_ns_ = monotonic_ns();
    std::vector<std::string> argv = spec.argv;
    if (!spec.strace_out.empty()) argv.insert(argv.begin(), {"/usr/bin/strace", "-f", "-c", "-o", spec.strace_out});
    pid_ = spawn(argv, in, out);
    for (int fd : {in, out, pipe_fds[1]})
        if (fd >= 0) close(fd);
    if (pid_ < 0) {
        why = std::string("fork: ") + std::strerror(errno);
        return false;
    }
    return true;
}

bool RunningAgent::alive() const {
    if (pid_ <= 0) return false;
    // WNOWAIT leaves a dead child for stop() to reap.
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
    return info.si_pid == 0;
}

void RunningAgent::stop() {
    if (pid_ > 0) {
        // The agent leads its own session and process group (setsid), so the
        // group holds exactly what it started: a wrapper's children (strace,
        // sh) go too.  The leader is reaped last, so that its PID, which is
        // the group's id, cannot be reused while we signal the group.
        kill(-pid_, SIGTERM);
        for (int waited = 0; waited < 3000 && alive(); waited += 5) usleep(5000);
        kill(-pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    if (feeder_ > 0) {
        kill(feeder_, SIGKILL);
        waitpid(feeder_, nullptr, 0);
        feeder_ = -1;
    }
}

std::optional<std::int64_t> RunningAgent::cpu_ns() const {
    if (auto s = schedstat_ns(pid_)) return s;
    return stat_ticks_ns(pid_);
}

std::optional<long> RunningAgent::rss_kib() const { return status_field_kib(pid_, "VmRSS:"); }
std::optional<long> RunningAgent::hwm_kib() const { return status_field_kib(pid_, "VmHWM:"); }

std::vector<AgentSpec> known_agents(const std::string& floor_bin, const std::string& crypt_agent_bin,
                                    const Paths& paths) {
    std::vector<AgentSpec> out;
    if (!crypt_agent_bin.empty() && access(crypt_agent_bin.c_str(), X_OK) == 0) {
        // A private session keyring is joined by the harness itself (see
        // main), so "--keyring session" never reaches root's @u; the tmpfs
        // fallback cache and the answered record go to the private tmpfs (as /run/crypt-agent
        // is one at boot), never to the real /run/crypt-agent.
        const std::string cache_dir = paths.run_dir + "/crypt-agent";
        out.push_back({"crypt-agent",
                       {crypt_agent_bin, "serve", "--keyring", "session", "--ask-dir", paths.ask_dir, "--cache-dir",
                        cache_dir, "--log-level", "warning"},
                       {crypt_agent_bin, "cache", "put", "--keyring", "session", "--ask-dir", paths.ask_dir,
                        "--cache-dir", cache_dir},
                       {crypt_agent_bin, "cache", "flush", "--keyring", "session", "--ask-dir", paths.ask_dir,
                        "--cache-dir", cache_dir},
                       false,
                       {}});
    }
    if (!floor_bin.empty() && access(floor_bin.c_str(), X_OK) == 0)
        out.push_back({"floor",
                       {floor_bin, "--ask-dir", paths.ask_dir, "--password-file", paths.password_file},
                       {},
                       {},
                       false,
                       {}});
    // systemd's own console agent answers from stdin when it has no terminal
    // (setsid); it only knows /run/systemd/ask-password, which the harness
    // has replaced with a private tmpfs.
    for (const char* tty : {"/usr/bin/systemd-tty-ask-password-agent", "/bin/systemd-tty-ask-password-agent"}) {
        if (access(tty, X_OK) == 0 && paths.ask_dir == "/run/systemd/ask-password") {
            out.push_back({"tty-agent", {tty, "--watch"}, {}, {}, true, {}});
            break;
        }
    }
    return out;
}

}  // namespace storm
