// SPDX-License-Identifier: MIT
#include "agent/log.hpp"

#include <atomic>
#include <boost/log/attributes/value_extraction.hpp>
#include <boost/log/core.hpp>
#include <boost/log/expressions.hpp>
#include <boost/log/sinks/basic_sink_backend.hpp>
#include <boost/log/sinks/sync_frontend.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <sys/stat.h>
#include <unistd.h>

#include "proto/secret.hpp"

namespace ca::agent {

namespace {
std::atomic<int> g_min_level{static_cast<int>(Level::info)};
bool g_initialised = false;
std::string g_command;   // set once at start, before any thread logs
std::mutex g_stderr_mu;  // one writer at a time: log records, lines, the status line
std::string g_status;    // the status line shown now (guarded by g_stderr_mu)

// "\r" and erase-to-end-of-line: the terminal's cursor is back at the start of an empty line.
constexpr char kClearLine[] = "\r\033[K";

void write_locked(std::string_view line) {
    if (!g_status.empty()) std::fputs(kClearLine, stderr);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fputc('\n', stderr);
    if (!g_status.empty()) std::fputs(g_status.c_str(), stderr);
    std::fflush(stderr);
}

// Boost.Log's records go through the same lock as every other stderr line.
class StderrBackend final
    : public boost::log::sinks::basic_formatted_sink_backend<char, boost::log::sinks::concurrent_feeding> {
public:
    void consume(const boost::log::record_view&, const string_type& line) {
        const std::lock_guard lock(g_stderr_mu);
        write_locked(line);
    }
};
}  // namespace

void write_stderr_line(std::string_view line) {
    const std::lock_guard lock(g_stderr_mu);
    write_locked(line);
}

void set_status_line(std::string text) {
    const std::lock_guard lock(g_stderr_mu);
    if (text == g_status) return;
    std::fputs(kClearLine, stderr);
    g_status = std::move(text);
    std::fputs(g_status.c_str(), stderr);
    std::fflush(stderr);
}

bool stderr_is_journal() noexcept {
    // systemd's rule (sd_journal_stream_fd, systemd.exec(5)): compare device and inode.
    const char* js = std::getenv("JOURNAL_STREAM");
    if (js == nullptr) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

void set_log_command(std::string_view command) { g_command = std::string(command); }

std::string line_prefix(Level l) {
    static const bool journal = stderr_is_journal();
    if (journal) return "<" + std::to_string(static_cast<int>(l)) + ">";
    return g_command.empty() ? std::string("crypt-agent: ") : "crypt-agent " + g_command + ": ";
}

std::optional<Level> parse_level(std::string_view s) noexcept {
    if (s == "debug") return Level::debug;
    if (s == "info") return Level::info;
    if (s == "notice") return Level::notice;
    if (s == "warning" || s == "warn") return Level::warning;
    if (s == "err" || s == "error") return Level::err;
    if (s == "crit") return Level::crit;
    return std::nullopt;
}

const char* to_string(Level l) noexcept {
    switch (l) {
    case Level::crit: return "crit";
    case Level::err: return "err";
    case Level::warning: return "warning";
    case Level::notice: return "notice";
    case Level::info: return "info";
    case Level::debug: return "debug";
    }
    return "?";
}

std::size_t utf8_at(std::string_view s, std::size_t i, char32_t& cp) noexcept {
    const auto b0 = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    char32_t min = 0;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        len = 2;
        cp = b0 & 0x1fU;
        min = 0x80;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        len = 3;
        cp = b0 & 0x0fU;
        min = 0x800;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        len = 4;
        cp = b0 & 0x07U;
        min = 0x10000;
    } else return 0;
    if (s.size() - i < len) return 0;
    for (std::size_t k = 1; k < len; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if ((b & 0xc0U) != 0x80U) return 0;
        cp = (cp << 6) | (b & 0x3fU);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

namespace {

bool breaks_or_reorders(char32_t cp) noexcept {
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

// `backslash`: escape '\\' too (values); the sink's safety net leaves it, so text already
// escaped by a caller is not escaped twice.
std::string escape(std::string_view s, bool backslash) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            switch (c) {
            case '\a': out += "\\a"; continue;
            case '\b': out += "\\b"; continue;
            case '\f': out += "\\f"; continue;
            case '\n': out += "\\n"; continue;
            case '\r': out += "\\r"; continue;
            case '\t': out += "\\t"; continue;
            case '\v': out += "\\v"; continue;
            case '\\': out += backslash ? "\\\\" : "\\"; continue;
            default: break;
            }
            if (c < 0x20 || c == 0x7f) {
                out += "\\x";
                out += kHex[c >> 4];
                out += kHex[c & 0xfU];
            } else {
                out += static_cast<char>(c);
            }
            continue;
        }
        char32_t cp = 0;
        const std::size_t len = utf8_at(s, i, cp);
        if (len == 0) {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xfU];
            ++i;
        } else if (breaks_or_reorders(cp)) {
            out += "\\u";
            for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(cp >> shift) & 0xfU];
            i += len;
        } else {
            out.append(s.substr(i, len));
            i += len;
        }
    }
    return out;
}

}  // namespace

std::string escaped(std::string_view s) { return escape(s, true); }

boost::log::sources::severity_logger_mt<Level>& logger() {
    static boost::log::sources::severity_logger_mt<Level> lg;
    return lg;
}

bool log_enabled(Level l) noexcept { return static_cast<int>(l) <= g_min_level.load(std::memory_order_relaxed); }

void set_log_level(Level min_level) { g_min_level.store(static_cast<int>(min_level)); }

void init_logging(Level min_level) {
    set_log_level(min_level);
    if (g_initialised) return;
    g_initialised = true;
    // Once per process (proto::Secret calls it at the first failure only).
    proto::set_lock_failure_hook([](int err, std::size_t bytes) {
        CA_LOG(warning) << "cannot lock memory for a secret (mlock of " << bytes << " bytes: " << std::strerror(err)
                        << "); secrets may reach swap. Raise LimitMEMLOCK= or RLIMIT_MEMLOCK, "
                        << "or keep CAP_IPC_LOCK; warning once, continuing";
    });
    namespace logging = boost::log;
    namespace sinks = boost::log::sinks;
    auto sink = boost::make_shared<sinks::synchronous_sink<StderrBackend>>(boost::make_shared<StderrBackend>());
    sink->set_formatter([](const logging::record_view& rec, logging::formatting_ostream& out) {
        auto sev = logging::extract<Level>("Severity", rec);
        // One record is one line whatever a caller forgot to escape: journald reads a "<N>" at
        // the start of each line of stderr as that line's priority.
        const auto msg = rec[logging::expressions::smessage];
        out << line_prefix(sev ? *sev : Level::info) << (msg ? escape(*msg, false) : std::string());
    });
    sink->set_filter([](const logging::attribute_value_set& attrs) {
        auto sev = logging::extract<Level>("Severity", attrs);
        return sev && log_enabled(*sev);
    });
    logging::core::get()->add_sink(sink);
}

}  // namespace ca::agent
