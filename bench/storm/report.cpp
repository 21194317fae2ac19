// SPDX-License-Identifier: MIT
#include "bench/storm/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <tuple>

namespace storm {

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return -1;
    std::sort(v.begin(), v.end());
    const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double median(std::vector<double> v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return x < 0; }), v.end());
    if (v.empty()) return -1;
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

namespace {

using Key = std::tuple<std::string, int, unsigned>;  // scenario first, so tables group by scenario

struct Summary {
    std::string agent;
    Scenario scenario{};
    unsigned n = 0, reps = 0;
    unsigned answered = 0, wrong = 0, cancelled = 0, unanswered = 0, duplicates = 0, ignored = 0;
    double wall_ms = -1, p50 = -1, p90 = -1, p99 = -1, max = -1, cpu_per_q_us = -1, first_ms = -1;
    double rss_kib = -1, hwm_kib = -1;
    bool leaked = false;
    std::string errors;
};

// Medians over repetitions of each figure; counts are summed so that one bad
// repetition cannot hide.
std::vector<Summary> summarise(const std::vector<RunResult>& runs) {
    std::map<std::tuple<int, unsigned, std::string>, std::vector<const RunResult*>> groups;
    std::vector<std::string> agent_order;
    for (const auto& r : runs) {
        if (std::find(agent_order.begin(), agent_order.end(), r.agent) == agent_order.end())
            agent_order.push_back(r.agent);
        groups[{static_cast<int>(r.scenario), r.n, r.agent}].push_back(&r);
    }
    std::vector<Summary> out;
    for (const auto& [key, rs] : groups) {
        Summary s;
        s.agent = std::get<2>(key);
        s.scenario = static_cast<Scenario>(std::get<0>(key));
        s.n = std::get<1>(key);
        s.reps = static_cast<unsigned>(rs.size());
        std::vector<double> wall, p50, p90, p99, mx, cpu, first, rss, hwm;
        for (const RunResult* r : rs) {
            s.answered += r->answered;
            s.wrong += r->wrong;
            s.cancelled += r->cancelled;
            s.unanswered += r->unanswered;
            s.duplicates += r->duplicates;
            s.ignored += r->ignored;
            s.leaked |= r->leaked_secret;
            if (!r->error.empty() && s.errors.find(r->error) == std::string::npos)
                s.errors += (s.errors.empty() ? "" : "; ") + r->error;
            wall.push_back(r->wall_ms);
            p50.push_back(percentile(r->latency_us, 50));
            p90.push_back(percentile(r->latency_us, 90));
            p99.push_back(percentile(r->latency_us, 99));
            mx.push_back(percentile(r->latency_us, 100));
            cpu.push_back(r->cpu_per_q_us);
            first.push_back(r->first_answer_ms);
            rss.push_back(static_cast<double>(r->rss_kib));
            hwm.push_back(static_cast<double>(r->hwm_kib));
        }
        s.wall_ms = median(wall);
        s.p50 = median(p50);
        s.p90 = median(p90);
        s.p99 = median(p99);
        s.max = median(mx);
        s.cpu_per_q_us = median(cpu);
        s.first_ms = median(first);
        s.rss_kib = median(rss);
        s.hwm_kib = median(hwm);
        out.push_back(std::move(s));
    }
    // Within a scenario and N, keep the order agents were given in.
    std::stable_sort(out.begin(), out.end(), [&](const Summary& a, const Summary& b) {
        const auto pos = [&](const std::string& name) {
            return std::find(agent_order.begin(), agent_order.end(), name) - agent_order.begin();
        };
        return std::make_tuple(static_cast<int>(a.scenario), a.n, pos(a.agent)) <
               std::make_tuple(static_cast<int>(b.scenario), b.n, pos(b.agent));
    });
    return out;
}

const Summary* floor_of(const std::vector<Summary>& all, const Summary& s) {
    for (const auto& f : all)
        if (f.agent == "floor" && f.scenario == s.scenario && f.n == s.n) return &f;
    return nullptr;
}

// A figure with `decimals` places, or "-" when it was not measured (< 0).
std::string fmt(double v, int decimals = 1) {
    if (v < 0) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string axis_label(double us) {
    char buf[32];
    if (us >= 1e6) std::snprintf(buf, sizeof buf, "%g s", us / 1e6);
    else if (us >= 1000) std::snprintf(buf, sizeof buf, "%g ms", us / 1000);
    else std::snprintf(buf, sizeof buf, "%g µs", us);
    return buf;
}

std::string ratio(double v, double floor_v) {
    if (v < 0 || floor_v <= 0) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fx", v / floor_v);
    return buf;
}

}  // namespace

void print_table(std::ostream& out, const std::vector<RunResult>& runs) {
    const auto sums = summarise(runs);
    char line[512];
    std::snprintf(line, sizeof line, "%-8s %-12s %6s %4s %6s %5s %5s %4s %9s %8s %8s %8s %9s %8s %7s %8s %7s %7s\n",
                  "scenario", "agent", "N", "reps", "answrd", "wrong", "unans", "dup", "wall_ms", "p50_us", "p90_us",
                  "p99_us", "max_us", "cpu/q_us", "cpu/fl", "first_ms", "rss_KiB", "p99/fl");
    out << line;
    for (const auto& s : sums) {
        const Summary* f = floor_of(sums, s);
        std::snprintf(
            line, sizeof line, "%-8s %-12s %6u %4u %6u %5u %5u %4u %9s %8s %8s %8s %9s %8s %7s %8s %7s %7s%s%s\n",
            to_string(s.scenario), s.agent.c_str(), s.n, s.reps, s.answered, s.wrong, s.unanswered, s.duplicates,
            fmt(s.wall_ms, 2).c_str(), fmt(s.p50).c_str(), fmt(s.p90).c_str(), fmt(s.p99).c_str(), fmt(s.max).c_str(),
            fmt(s.cpu_per_q_us, 2).c_str(), f ? ratio(s.cpu_per_q_us, f->cpu_per_q_us).c_str() : "-",
            fmt(s.first_ms, 2).c_str(), fmt(s.rss_kib, 0).c_str(), f ? ratio(s.p99, f->p99).c_str() : "-",
            s.leaked ? "  SECRET IN LOG" : "", s.errors.empty() ? "" : ("  [" + s.errors + "]").c_str());
        out << line;
    }
}

void print_targets(std::ostream& out, const std::vector<RunResult>& runs) {
    const auto sums = summarise(runs);
    const auto verdict = [](bool measured, bool met) { return !measured ? "not measured" : met ? "met" : "NOT met"; };
    std::vector<std::string> agents;
    for (const auto& s : sums)
        if (s.agent != "floor" && std::find(agents.begin(), agents.end(), s.agent) == agents.end())
            agents.push_back(s.agent);
    for (const auto& agent : agents) {
        out << "targets for " << agent << " (medians):\n";
        for (const auto& s : sums) {
            if (s.agent != agent) continue;
            const Summary* f = floor_of(sums, s);
            if (s.scenario == Scenario::live) {
                const bool have = s.cpu_per_q_us >= 0 && f && f->cpu_per_q_us > 0;
                out << "  live N=" << s.n << ": CPU/question " << fmt(s.cpu_per_q_us, 2)
                    << " us = " << (f ? ratio(s.cpu_per_q_us, f->cpu_per_q_us) : "-")
                    << " floor (<= 1.5x): " << verdict(have, have && s.cpu_per_q_us <= 1.5 * f->cpu_per_q_us)
                    << "; p99 " << fmt(s.p99, 0) << " us (< 1000; floor " << (f ? fmt(f->p99, 0) : "-")
                    << "): " << verdict(s.p99 >= 0, s.p99 < 1000) << "\n";
            } else if (s.scenario == Scenario::startup) {
                out << "  start to first answer " << fmt(s.first_ms, 2) << " ms (<= 2; floor "
                    << (f ? fmt(f->first_ms, 2) : "-") << "): " << verdict(s.first_ms >= 0, s.first_ms <= 2.0)
                    << "\n  idle RSS " << fmt(s.rss_kib, 0) << " KiB (<= 4096; floor " << (f ? fmt(f->rss_kib, 0) : "-")
                    << "): " << verdict(s.rss_kib >= 0, s.rss_kib <= 4096) << "\n";
            }
        }
    }
}

void print_machine_lines(std::ostream& out, const std::vector<RunResult>& runs) {
    const auto sums = summarise(runs);
    unsigned total_n = 0, answered = 0, wrong = 0, cancelled = 0, unanswered = 0, duplicates = 0, ignored = 0;
    unsigned errors = 0, leaks = 0;
    for (const auto& s : sums) {
        const Summary* f = floor_of(sums, s);
        out << "storm-result agent=" << s.agent << " scenario=" << to_string(s.scenario) << " n=" << s.n
            << " reps=" << s.reps << " answered=" << s.answered << " wrong=" << s.wrong << " cancelled=" << s.cancelled
            << " unanswered=" << s.unanswered << " duplicates=" << s.duplicates << " ignored=" << s.ignored
            << " wall_ms=" << fmt(s.wall_ms, 3) << " p50_us=" << fmt(s.p50) << " p90_us=" << fmt(s.p90)
            << " p99_us=" << fmt(s.p99) << " max_us=" << fmt(s.max) << " cpu_per_q_us=" << fmt(s.cpu_per_q_us, 3)
            << " cpu_ratio=" << (f ? ratio(s.cpu_per_q_us, f->cpu_per_q_us) : "-")
            << " first_answer_ms=" << fmt(s.first_ms, 3) << " rss_kib=" << fmt(s.rss_kib, 0)
            << " hwm_kib=" << fmt(s.hwm_kib, 0) << " secret_in_log=" << (s.leaked ? 1 : 0)
            << " errors=" << (s.errors.empty() ? 0 : 1) << "\n";
    }
    for (const auto& r : runs) {
        total_n += r.n;
        answered += r.answered;
        wrong += r.wrong;
        cancelled += r.cancelled;
        unanswered += r.unanswered;
        duplicates += r.duplicates;
        ignored += r.ignored;
        errors += r.error.empty() ? 0 : 1;
        leaks += r.leaked_secret ? 1 : 0;
    }
    out << "storm-total runs=" << runs.size() << " questions=" << total_n << " answered=" << answered
        << " wrong=" << wrong << " cancelled=" << cancelled << " unanswered=" << unanswered
        << " duplicates=" << duplicates << " ignored=" << ignored << " errors=" << errors << " secret_in_log=" << leaks
        << "\n";
}

bool write_csv(const std::string& path, const std::vector<RunResult>& runs) {
    std::ofstream out(path);
    out << "agent,scenario,n,rep,answered,wrong,cancelled,unanswered,duplicates,ignored,wall_ms,"
           "p50_us,p90_us,p99_us,max_us,cpu_total_us,cpu_per_q_us,first_answer_ms,rss_kib,hwm_kib,"
           "secret_in_log,error\n";
    for (const auto& r : runs) {
        std::string err = r.error;
        std::replace(err.begin(), err.end(), '"', '\'');
        out << r.agent << ',' << to_string(r.scenario) << ',' << r.n << ',' << r.rep << ',' << r.answered << ','
            << r.wrong << ',' << r.cancelled << ',' << r.unanswered << ',' << r.duplicates << ',' << r.ignored << ','
            << fmt(r.wall_ms, 3) << ',' << fmt(percentile(r.latency_us, 50), 2) << ','
            << fmt(percentile(r.latency_us, 90), 2) << ',' << fmt(percentile(r.latency_us, 99), 2) << ','
            << fmt(percentile(r.latency_us, 100), 2) << ',' << fmt(r.cpu_total_us, 1) << ',' << fmt(r.cpu_per_q_us, 3)
            << ',' << fmt(r.first_answer_ms, 3) << ',' << r.rss_kib << ',' << r.hwm_kib << ','
            << (r.leaked_secret ? 1 : 0) << ",\"" << err << "\"\n";
    }
    return static_cast<bool>(out);
}

namespace {

// Empirical CDF curves on a log10 latency axis, one panel per scenario
// that has latencies (live, backlog), one colour per agent, largest N.
constexpr int kW = 760, kPanelH = 300, kLeft = 70, kRight = 170, kTop = 40, kBottom = 50;
constexpr const char* kColours[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

std::string svg_panel(const std::vector<RunResult>& runs, Scenario sc, int y0, const std::vector<std::string>& agents) {
    unsigned n = 0;
    for (const auto& r : runs)
        if (r.scenario == sc) n = std::max(n, r.n);
    std::map<std::string, std::vector<double>> lat;
    double lo = 1e300, hi = 0;
    for (const auto& r : runs) {
        if (r.scenario != sc || r.n != n) continue;
        auto& v = lat[r.agent];
        for (double x : r.latency_us) {
            v.push_back(std::max(x, 0.1));
            lo = std::min(lo, v.back());
            hi = std::max(hi, v.back());
        }
    }
    if (lat.empty() || hi <= 0) return {};
    const double l0 = std::floor(std::log10(lo)), l1 = std::max(l0 + 1, std::ceil(std::log10(hi)));
    const int pw = kW - kLeft - kRight, ph = kPanelH - kTop - kBottom;
    const auto xpix = [&](double us) { return kLeft + (std::log10(us) - l0) / (l1 - l0) * pw; };
    const auto ypix = [&](double frac) { return y0 + kTop + (1 - frac) * ph; };
    std::string s;
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "<text x='%d' y='%d' font-size='14' font-weight='bold'>%s, N=%u: share of questions "
                  "answered within a latency%s</text>\n",
                  kLeft, y0 + 22, to_string(sc), n, sc == Scenario::startup ? " (from the agent's spawn)" : "");
    s += buf;
    std::snprintf(buf, sizeof buf, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#444'/>\n", kLeft,
                  y0 + kTop, pw, ph);
    s += buf;
    for (double d = l0; d <= l1 + 1e-9; d += 1) {
        const double x = xpix(std::pow(10, d));
        const double us = std::pow(10, d);
        std::snprintf(buf, sizeof buf,
                      "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#ddd'/><text x='%.1f' y='%d' "
                      "font-size='11' text-anchor='middle'>%s</text>\n",
                      x, y0 + kTop, x, y0 + kTop + ph, x, y0 + kTop + ph + 16, axis_label(us).c_str());
        s += buf;
    }
    for (int q = 0; q <= 4; ++q) {
        std::snprintf(buf, sizeof buf,
                      "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#eee'/><text x='%d' y='%.1f' "
                      "font-size='11' text-anchor='end'>%d%%</text>\n",
                      kLeft, ypix(q / 4.0), kLeft + pw, ypix(q / 4.0), kLeft - 6, ypix(q / 4.0) + 4, q * 25);
        s += buf;
    }
    std::snprintf(buf, sizeof buf,
                  "<text x='%d' y='%d' font-size='11' text-anchor='middle'>latency, rename of ask file to "
                  "reply on the socket (log scale)</text>\n",
                  kLeft + pw / 2, y0 + kTop + ph + 34);
    s += buf;
    // The targets: live p99 under 1 ms, start to first answer 2 ms.
    const double target_us = sc == Scenario::live ? 1000 : sc == Scenario::startup ? 2000 : 0;
    if (target_us > 0 && l0 <= std::log10(target_us) && std::log10(target_us) <= l1) {
        std::snprintf(buf, sizeof buf,
                      "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#888' stroke-dasharray='4,3'/>"
                      "<text x='%.1f' y='%d' font-size='10' fill='#666'>%g ms target</text>\n",
                      xpix(target_us), y0 + kTop, xpix(target_us), y0 + kTop + ph, xpix(target_us) + 3, y0 + kTop + 12,
                      target_us / 1000);
        s += buf;
    }
    int legend_y = y0 + kTop + 10;
    for (std::size_t a = 0; a < agents.size(); ++a) {
        auto it = lat.find(agents[a]);
        if (it == lat.end() || it->second.empty()) continue;
        auto v = it->second;
        std::sort(v.begin(), v.end());
        const char* colour = kColours[a % std::size(kColours)];
        s += std::string("<polyline fill='none' stroke='") + colour + "' stroke-width='1.8' points='";
        // At most ~600 points per curve: every k-th sample plus the last.
        const std::size_t step = std::max<std::size_t>(1, v.size() / 600);
        for (std::size_t i = 0; i < v.size(); i += step) {
            std::snprintf(buf, sizeof buf, "%.1f,%.1f ", xpix(v[i]),
                          ypix(static_cast<double>(i + 1) / static_cast<double>(v.size())));
            s += buf;
        }
        std::snprintf(buf, sizeof buf, "%.1f,%.1f", xpix(v.back()), ypix(1.0));
        s += buf;
        s += "'/>\n";
        std::snprintf(buf, sizeof buf,
                      "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='%s' stroke-width='3'/><text x='%d' y='%d' "
                      "font-size='12'>%s (p99 %s µs)</text>\n",
                      kLeft + pw + 10, legend_y, kLeft + pw + 30, legend_y, colour, kLeft + pw + 35, legend_y + 4,
                      agents[a].c_str(), fmt(percentile(v, 99), 0).c_str());
        s += buf;
        legend_y += 18;
    }
    return s;
}

}  // namespace

bool write_svg(const std::string& path, const std::vector<RunResult>& runs) {
    std::vector<std::string> agents;
    for (const auto& r : runs)
        if (std::find(agents.begin(), agents.end(), r.agent) == agents.end()) agents.push_back(r.agent);
    std::string body;
    int y = 0;
    for (Scenario sc : {Scenario::live, Scenario::backlog, Scenario::startup}) {
        std::string panel = svg_panel(runs, sc, y, agents);
        if (!panel.empty()) {
            body += panel;
            y += kPanelH;
        }
    }
    std::ofstream out(path);
    out << "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' width='" << kW
        << "' height='" << std::max(y, 40) << "' font-family='sans-serif'>\n<rect width='100%' height='100%' "
        << "fill='white'/>\n"
        << (body.empty() ? "<text x='10' y='25'>no answered questions to plot</text>\n" : body) << "</svg>\n";
    return static_cast<bool>(out);
}

}  // namespace storm
