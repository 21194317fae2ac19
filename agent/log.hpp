// SPDX-License-Identifier: MIT
// Logging: Boost.Log to stderr.  When stderr is the journal (JOURNAL_STREAM names
// its device and inode, as systemd sets it for a unit's stdout/stderr stream), each
// line carries a syslog priority "<N>" so journald records levels; anywhere else
// (a terminal, a file) a line reads "crypt-agent COMMAND: what: reason".  Secrets
// never reach these macros: log fingerprints (proto::FingerprintKey) and counts.
#pragma once

#include <boost/log/sources/record_ostream.hpp>
#include <boost/log/sources/severity_logger.hpp>
#include <cstddef>
#include <optional>
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

boost::log::sources::severity_logger_mt<Level>& logger();

// Whether standard error is the journal's stream (JOURNAL_STREAM = "DEV:INO" of fd 2).
[[nodiscard]] bool stderr_is_journal() noexcept;
// The command the lines are about ("serve", "cache put"), named on lines not for the journal.
void set_log_command(std::string_view command);
// What starts a line on stderr: "<N>" for the journal, else "crypt-agent COMMAND: ".
[[nodiscard]] std::string line_prefix(Level l);

// Writes one whole line to standard error (the newline is added), under the lock the log
// records take, so a status line (below) is cleared first and drawn again after it.
void write_stderr_line(std::string_view line);
// A status line at the bottom of a terminal, redrawn in place with '\r' (agent/cli/wait_line.hpp
// draws waits there); "" removes it.  Only for a terminal: the caller checks.
void set_status_line(std::string text);

// A value from outside (an ask file's name, Id or Message) made safe for one log line, with
// C-style escapes as systemd's cescape(): control bytes (\n, \r, \t, ... or \xNN), backslash,
// bytes that are not UTF-8 (\xNN), and the code points that break or reorder a line in a
// viewer: C1 controls (NEL U+0085), U+2028/2029, bidi controls (U+061C, U+200E/F,
// U+202A-202E, U+2066-2069) as \uXXXX.  Other UTF-8 is kept readable.  Without this a name
// holding "\n<0>..." would be a separate record at emergency priority.
[[nodiscard]] std::string escaped(std::string_view s);

// The code point of the UTF-8 sequence at s[i] and its length, or 0 when it is not valid
// UTF-8 (overlong, surrogate, past U+10FFFF, truncated).  Shared by escaped() and the JSON
// writer (agent/cli/json.hpp).
[[nodiscard]] std::size_t utf8_at(std::string_view s, std::size_t i, char32_t& cp) noexcept;

}  // namespace ca::agent

// The level check comes first so a disabled line costs one relaxed load, not a record.
// (A for statement, not an if, so `if (x) CA_LOG(info) << ...; else ...` stays unambiguous.)
#define CA_LOG(lvl)                                                                                           \
    for (bool ca_log_on_ = ::ca::agent::log_enabled(::ca::agent::Level::lvl); ca_log_on_; ca_log_on_ = false) \
    BOOST_LOG_SEV(::ca::agent::logger(), ::ca::agent::Level::lvl)
