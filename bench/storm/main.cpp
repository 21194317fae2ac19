// SPDX-License-Identifier: MIT
// storm: asks many questions at once, the way systemd 252 asks them, and
// measures how password agents answer.  See bench/README.md.
#include "bench/storm/agents.hpp"
#include "bench/storm/report.hpp"
#include "bench/storm/sandbox.hpp"
#include "bench/storm/scenario.hpp"

#include <fcntl.h>
#include <getopt.h>
#include <sys/random.h>
#include <unistd.h>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

namespace {

struct Options {
    std::vector<std::string> agents;  // empty: floor only (or all with --compare)
    bool compare = false;
    std::vector<storm::Scenario> scenarios;
    std::vector<unsigned> ns;
    unsigned concurrency = 0;
    unsigned reps = 1;
    unsigned peer_max_n = 1000;
    int timeout_s = 120;
    int idle_ms = 2000;
    std::string floor_bin, crypt_agent_bin, custom_cmd, password_file, csv, svg;
    bool keep = false;
    bool syscalls = false;
};

void usage(std::ostream& out) {
    out << "usage: storm [options]\n"
           "  --agent NAME        crypt-agent | floor | tty-agent | custom (repeatable; default floor)\n"
           "  --compare           every agent found here, alternating, with ratios to the floor\n"
           "  --agent-cmd 'CMD'   the custom agent; {askdir} and {pwfile} are replaced\n"
           "  --scenario S        live | backlog | startup | all (repeatable; default live)\n"
           "  -n N[,N...]         questions per run (default 100)\n"
           "  -c C                at most C questions open at once (default: all N)\n"
           "  --reps R            repetitions (default 1)\n"
           "  --timeout S         per run (default 120)   --idle-ms MS  give up after no reply (default 2000)\n"
           "  --peer-max-n N      run peers (tty-agent) only up to this N (default 1000)\n"
           "  --floor PATH        floor agent (default: next to storm)\n"
           "  --crypt-agent PATH  (default: $CRYPT_AGENT_BIN, else ../agent/crypt-agent next to storm)\n"
           "  --password-file F   the password agents must send (default: a random one)\n"
           "  --csv FILE  --svg FILE  --keep (keep the scratch directory with agent logs)\n"
           "  --syscalls          run agents under strace -c and print system calls per question\n"
           "                      (diagnosis only: strace makes every timing meaningless)\n"
           "Exit: 0 every question answered right; 1 otherwise; 2 usage; 77 cannot run here.\n";
}

std::vector<unsigned> parse_ns(const char* s) {
    std::vector<unsigned> out;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ',')) out.push_back(static_cast<unsigned>(std::stoul(item)));
    return out;
}

bool parse_scenario(const std::string& s, std::vector<storm::Scenario>& out) {
    using storm::Scenario;
    if (s == "all") out.insert(out.end(), {Scenario::live, Scenario::backlog, Scenario::startup});
    else if (s == "live") out.push_back(Scenario::live);
    else if (s == "backlog") out.push_back(Scenario::backlog);
    else if (s == "startup") out.push_back(Scenario::startup);
    else return false;
    return true;
}

int parse_options(int argc, char** argv, Options& o) {
    enum {
        AGENT = 1000,
        COMPARE,
        CMD,
        SCENARIO,
        REPS,
        TIMEOUT,
        IDLE,
        PEERMAX,
        FLOOR,
        CRYPT,
        PWFILE,
        CSV,
        SVG,
        KEEP,
        HELP,
        SYSCALLS
    };
    static const option longopts[] = {{"agent", required_argument, nullptr, AGENT},
                                      {"compare", no_argument, nullptr, COMPARE},
                                      {"agent-cmd", required_argument, nullptr, CMD},
                                      {"scenario", required_argument, nullptr, SCENARIO},
                                      {"reps", required_argument, nullptr, REPS},
                                      {"timeout", required_argument, nullptr, TIMEOUT},
                                      {"idle-ms", required_argument, nullptr, IDLE},
                                      {"peer-max-n", required_argument, nullptr, PEERMAX},
                                      {"floor", required_argument, nullptr, FLOOR},
                                      {"crypt-agent", required_argument, nullptr, CRYPT},
                                      {"password-file", required_argument, nullptr, PWFILE},
                                      {"csv", required_argument, nullptr, CSV},
                                      {"svg", required_argument, nullptr, SVG},
                                      {"keep", no_argument, nullptr, KEEP},
                                      {"help", no_argument, nullptr, HELP},
                                      {"syscalls", no_argument, nullptr, SYSCALLS},
                                      {nullptr, 0, nullptr, 0}};
    int c;
    try {
        while ((c = getopt_long(argc, argv, "n:c:", longopts, nullptr)) != -1) {
            switch (c) {
            case 'n': {
                auto v = parse_ns(optarg);
                o.ns.insert(o.ns.end(), v.begin(), v.end());
                break;
            }
            case 'c': o.concurrency = static_cast<unsigned>(std::stoul(optarg)); break;
            case AGENT: o.agents.emplace_back(optarg); break;
            case COMPARE: o.compare = true; break;
            case CMD: o.custom_cmd = optarg; break;
            case SCENARIO:
                if (!parse_scenario(optarg, o.scenarios)) return 2;
                break;
            case REPS: o.reps = static_cast<unsigned>(std::stoul(optarg)); break;
            case TIMEOUT: o.timeout_s = std::stoi(optarg); break;
            case IDLE: o.idle_ms = std::stoi(optarg); break;
            case PEERMAX: o.peer_max_n = static_cast<unsigned>(std::stoul(optarg)); break;
            case FLOOR: o.floor_bin = optarg; break;
            case CRYPT: o.crypt_agent_bin = optarg; break;
            case PWFILE: o.password_file = optarg; break;
            case CSV: o.csv = optarg; break;
            case SVG: o.svg = optarg; break;
            case KEEP: o.keep = true; break;
            case SYSCALLS: o.syscalls = true; break;
            case HELP: usage(std::cout); std::exit(0);
            default: return 2;
            }
        }
    } catch (const std::exception&) {
        return 2;
    }
    if (optind != argc || o.reps == 0) return 2;
    if (o.scenarios.empty()) o.scenarios.push_back(storm::Scenario::live);
    if (o.ns.empty()) o.ns.push_back(100);
    if (std::find(o.ns.begin(), o.ns.end(), 0u) != o.ns.end()) return 2;
    return 0;
}

std::string self_dir() {
    char buf[4096];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return ".";
    std::string p(buf, static_cast<std::size_t>(n));
    return p.substr(0, p.rfind('/'));
}

void default_paths(Options& o) {
    const std::string here = self_dir();
    if (o.floor_bin.empty()) o.floor_bin = here + "/floor-agent";
    if (o.crypt_agent_bin.empty()) {
        const char* env = std::getenv("CRYPT_AGENT_BIN");
        o.crypt_agent_bin = env && *env ? env : here + "/../agent/crypt-agent";
    }
}

// A random printable password; the agents get it through a 0600 file only.
std::string random_password() {
    static constexpr char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char raw[24];
    while (getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) {
    }
    std::string pw = "storm-";
    for (unsigned char b : raw) pw += alphabet[b % (sizeof alphabet - 1)];
    return pw;
}

bool read_password(const std::string& path, std::string& pw) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::getline(in, pw, '\0');
    while (!pw.empty() && pw.back() == '\n') pw.pop_back();
    return !pw.empty();
}

bool write_password(const std::string& path, const std::string& pw) {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    const bool ok = write(fd, pw.data(), pw.size()) == static_cast<ssize_t>(pw.size());
    close(fd);
    return ok;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
        s.replace(p, from.size(), to);
    return s;
}

// The custom agent runs through /bin/sh with exec, so its PID is the agent's.
storm::AgentSpec custom_agent(const Options& o, const storm::Paths& paths) {
    std::string cmd = replace_all(o.custom_cmd, "{askdir}", paths.ask_dir);
    cmd = replace_all(cmd, "{pwfile}", paths.password_file);
    return {"custom", {"/bin/sh", "-c", "exec " + cmd}, {}, {}, false, {}};
}

// Which agents to run, in the order given; an agent asked for by name that
// cannot run here is an error (77), one merely found missing by --compare is not.
int select_agents(const Options& o, const storm::Paths& paths, std::vector<storm::AgentSpec>& out) {
    const auto known = storm::known_agents(o.floor_bin, o.crypt_agent_bin, paths);
    if (o.compare) {
        out = known;
        if (std::none_of(out.begin(), out.end(), [](const auto& a) { return a.name == "floor"; })) {
            std::cerr << "storm: --compare needs the floor agent (" << o.floor_bin << ")\n";
            return 77;
        }
        for (const char* name : {"crypt-agent", "tty-agent"})
            if (std::none_of(out.begin(), out.end(), [&](const auto& a) { return a.name == name; }))
                std::cerr << "storm: " << name << " not found here; left out of the comparison\n";
        std::cerr << "storm: Mandos' password-agent is not supported by this harness yet; left out\n";
        return 0;
    }
    std::vector<std::string> names = o.agents;
    if (names.empty()) names.emplace_back(o.custom_cmd.empty() ? "floor" : "custom");
    for (const auto& name : names) {
        if (name == "custom") {
            if (o.custom_cmd.empty()) return 2;
            out.push_back(custom_agent(o, paths));
            continue;
        }
        auto it = std::find_if(known.begin(), known.end(), [&](const auto& a) { return a.name == name; });
        if (it == known.end()) {
            std::cerr << "storm: agent " << name << " is not available here"
                      << (name == "crypt-agent" ? " (" + o.crypt_agent_bin + ")" : std::string()) << "\n";
            return 77;
        }
        out.push_back(*it);
    }
    return 0;
}

// On SIGINT/SIGTERM/SIGHUP: remove the password file and go.  Agents,
// workers and the feeder die with us (PR_SET_PDEATHSIG); the mount
// namespace and its tmpfs vanish with the last process in it.
char g_password_path[4096];

extern "C" void on_fatal_signal(int sig) {
    if (g_password_path[0]) unlink(g_password_path);
    _exit(128 + sig);
}

void remove_password_on_signals(const std::string& path) {
    if (path.size() >= sizeof g_password_path) return;
    std::memcpy(g_password_path, path.c_str(), path.size() + 1);
    struct sigaction sa {};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

// The 1-minute load average: figures from a busy machine are labelled so.
std::string load1() {
    std::ifstream in("/proc/loadavg");
    std::string v;
    in >> v;
    return v.empty() ? "?" : v;
}

bool all_right(const std::vector<storm::RunResult>& runs) {
    return std::all_of(runs.begin(), runs.end(), [](const storm::RunResult& r) {
        return r.error.empty() && r.answered == r.n && r.wrong == 0 && r.cancelled == 0 && r.duplicates == 0 &&
               !r.leaked_secret;
    });
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (const int rc = parse_options(argc, argv, o); rc != 0) {
        usage(std::cerr);
        return rc;
    }
    default_paths(o);
    std::signal(SIGPIPE, SIG_IGN);

    storm::Sandbox box;
    bool missing = false;
    if (const std::string why = storm::enter_sandbox(box, missing); !why.empty()) {
        std::cerr << "storm: " << why << "\n";
        return missing ? 77 : 1;
    }
    storm::Paths paths{box.ask_dir, box.work_dir, box.work_dir + "/password", box.run_dir};
    std::string password;
    if (!o.password_file.empty() && !read_password(o.password_file, password)) {
        std::cerr << "storm: cannot read a password from " << o.password_file << "\n";
        return 2;
    }
    if (password.empty()) password = random_password();
    remove_password_on_signals(paths.password_file);
    if (!write_password(paths.password_file, password)) {
        std::cerr << "storm: cannot write the password file in " << box.work_dir << "\n";
        return 1;
    }

    std::vector<storm::AgentSpec> agents;
    if (const int rc = select_agents(o, paths, agents); rc != 0) {
        if (rc == 2) usage(std::cerr);
        storm::remove_tree(box.work_dir);
        return rc;
    }
    const unsigned max_n = *std::max_element(o.ns.begin(), o.ns.end());
    storm::raise_fd_limit(2ul * max_n + 256);

    const std::string load_start = load1();
    std::vector<storm::RunResult> runs;
    for (unsigned rep = 1; rep <= o.reps; ++rep) {
        for (auto sc : o.scenarios) {
            for (unsigned n : o.ns) {
                const unsigned this_n = sc == storm::Scenario::startup ? 1 : n;
                if (sc == storm::Scenario::startup && n != o.ns.front())
                    continue;  // startup is one question whatever N is
                for (const auto& agent : agents) {
                    if (agent.name == "tty-agent" && this_n > o.peer_max_n) continue;
                    storm::RunConfig cfg;
                    cfg.scenario = sc;
                    cfg.n = this_n;
                    cfg.concurrency = o.concurrency;
                    cfg.timeout_ms = o.timeout_s * 1000;
                    cfg.idle_ms = o.idle_ms;
                    cfg.password = password;
                    cfg.strace = o.syscalls;
                    runs.push_back(storm::run_scenario(agent, paths, cfg, rep));
                    const auto& r = runs.back();
                    std::cerr << "storm: rep " << rep << " " << storm::to_string(sc) << " N=" << this_n << " "
                              << agent.name << ": " << r.answered << " answered, " << r.wrong << " wrong, "
                              << r.unanswered << " unanswered" << (r.error.empty() ? "" : " (" + r.error + ")") << "\n";
                }
            }
        }
    }
    explicit_bzero(password.data(), password.size());

    storm::print_table(std::cout, runs);
    if (o.syscalls) {
        std::cout << "system calls per question (strace -f -c; the timings above are not valid):\n";
        for (const auto& r : runs)
            std::cout << "  " << r.agent << " " << storm::to_string(r.scenario) << " N=" << r.n << " rep " << r.rep
                      << ": " << (r.syscalls.empty() ? "(no strace summary)" : r.syscalls) << "\n";
    } else {
        storm::print_targets(std::cout, runs);
    }
    if (!o.csv.empty() && !storm::write_csv(o.csv, runs)) std::cerr << "storm: cannot write " << o.csv << "\n";
    if (!o.svg.empty() && !storm::write_svg(o.svg, runs)) std::cerr << "storm: cannot write " << o.svg << "\n";
    if (o.keep) std::cerr << "storm: agent logs kept in " << box.work_dir << "\n";
    else storm::remove_tree(box.work_dir);
    std::cout << "load average (1 min): " << load_start << " at start, " << load1() << " at end, on "
              << sysconf(_SC_NPROCESSORS_ONLN) << " CPUs\n";
    storm::print_machine_lines(std::cout, runs);
    return all_right(runs) ? 0 : 1;
}
