// SPDX-License-Identifier: MIT
// Logging: one line per record to stderr.  When stderr is the journal (JOURNAL_STREAM names
// its device and inode, as systemd sets it for a unit's stdout/stderr stream), each
// line carries a syslog priority "<N>" so journald records levels; anywhere else
// (a terminal, a file) a line reads "crypt-agent COMMAND: what: reason".  Secrets
// never reach these macros: log fingerprints (proto::FingerprintKey) and counts.
#pragma once

#include <ios>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>

namespace ca::agent {

// Values are syslog priorities.
enum class Level : int { crit = 2, err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

[[nodiscard]] std::optional<Level> parse_level(std::string_view s) noexcept;
[[nodiscard]] const char* to_string(Level l) noexcept;

// Installs the stderr sink; safe to call again to change the level.
void init_logging(Level min_level);
void set_log_level(Level min_level);
[[nodiscard]] bool log_enabled(Level l) noexcept;

// One record: collects what is streamed into it and writes it as one line (prefix, escaped
// message, newline) with one write(2) when it ends.  Not Boost.Log: its sinks, attributes and
// threads cost serve 0.6 MiB and a quarter of its start-up for what is one line to stderr.
class LogLine {
public:
    explicit LogLine(Level l) : level_(l) {}
    LogLine(const LogLine&) = delete;
    LogLine& operator=(const LogLine&) = delete;
    ~LogLine();

    template <class T>
    LogLine& operator<<(const T& v) {
        out_ << v;
        return *this;
    }
    LogLine& operator<<(std::ostream& (*manip)(std::ostream&)) {
        out_ << manip;
        return *this;
    }
    LogLine& operator<<(std::ios_base& (*manip)(std::ios_base&)) {
        out_ << manip;
        return *this;
    }

private:
    Level level_;
    std::ostringstream out_;
};

// Whether standard error is the journal's stream (JOURNAL_STREAM = "DEV:INO" of fd 2).
[[nodiscard]] bool stderr_is_journal() noexcept;
// The command the lines are about ("serve", "cache put"), named on lines not for the journal.
void set_log_command(std::string_view command);
// What starts a line on stderr: "<N>" for the journal, else "crypt-agent COMMAND: ".
[[nodiscard]] std::string line_prefix(Level l);

// A value from outside (an ask file's name, Id or Message) made safe for one log line, with
// C-style escapes as systemd's cescape(): control bytes (\n, \r, \t, ... or \xNN), backslash,
// bytes that are not UTF-8 (\xNN), and the code points that break or reorder a line in a
// viewer: C1 controls (NEL U+0085), U+2028/2029, bidi controls (U+061C, U+200E/F,
// U+202A-202E, U+2066-2069) as \uXXXX.  Other UTF-8 is kept readable.  Without this a name
// holding "\n<0>..." would be a separate record at emergency priority.
[[nodiscard]] std::string escaped(std::string_view s);

}  // namespace ca::agent

// The level check comes first so a disabled line costs one relaxed load, not a record.
// (A for statement, not an if, so `if (x) CA_LOG(info) << ...; else ...` stays unambiguous.)
#define CA_LOG(lvl)                                                                                   \
    for (bool ca_log_on_ = ::ca::agent::log_enabled(::ca::agent::Level::lvl); ca_log_on_; ca_log_on_ = false) \
        ::ca::agent::LogLine(::ca::agent::Level::lvl)
