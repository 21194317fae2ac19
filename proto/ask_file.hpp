// SPDX-License-Identifier: MIT
// Parser of the [Ask] files that systemd's ask-password writes
// (docs/PASSWORD_AGENTS.md; the writer is src/shared/ask-password-api.c).
//
// systemd 252 writes, in this order: PID, Socket, AcceptCached, Echo, NotAfter,
// and when set Silent, Message, Icon, Id.  Newer releases add keys; unknown keys
// are ignored as systemd's own agents ignore them.  Anything we cannot parse
// with certainty is rejected with a typed error: a question we misread could
// send a passphrase to the wrong place, while a question we leave alone is
// answered by another agent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proto/result.hpp"

namespace ca::proto {

// Ask files are a few hundred bytes; a long Message fits easily in 16 KiB.
inline constexpr std::size_t kAskFileMaxSize = std::size_t{16} * 1024;
// NotAfter values that mean "no deadline".
inline constexpr std::uint64_t kNotAfterNever = UINT64_MAX;

struct Question {
    std::int64_t pid = 0;                // PID= of the asker, > 0
    std::string socket;                  // Socket=, an absolute path (as written; may contain "//")
    bool accept_cached = false;          // AcceptCached=
    bool echo = false;                   // Echo=
    std::uint64_t not_after_us = 0;      // NotAfter=, CLOCK_MONOTONIC µs; 0 = never
    bool silent = false;                 // Silent=
    std::optional<std::string> message;  // Message=, as written (systemd 252 writes it unescaped)
    std::optional<std::string> icon;     // Icon=
    std::optional<std::string> id;       // Id=, e.g. "cryptsetup:/dev/vda2"

    // True if the question has a deadline (NotAfter set and not UINT64_MAX).
    [[nodiscard]] bool has_deadline() const noexcept { return not_after_us != 0 && not_after_us != kNotAfterNever; }
};

enum class AskError {
    too_large,      // over kAskFileMaxSize
    binary,         // NUL or other control byte in the file
    no_section,     // no [Ask] section
    bad_line,       // a line that is neither comment, section nor key=value
    duplicate_key,  // a known key given twice (systemd would take the last; we refuse to guess)
    bad_number,     // PID or NotAfter not a decimal number in range
    bad_boolean,    // AcceptCached/Echo/Silent not a boolean systemd accepts
    missing_pid,
    missing_socket,
    bad_socket,  // Socket= not an absolute path, or longer than sun_path allows
};

struct AskParseError {
    AskError kind;
    unsigned line;       // 1-based; 0 when the error concerns the whole file
    std::string reason;  // for an administrator; never quotes a value that could be secret
};

[[nodiscard]] const char* to_string(AskError e) noexcept;

// Parses one ask file's contents.  Pure: no I/O.
[[nodiscard]] Expected<Question, AskParseError> parse_ask_file(std::string_view text);

// systemd's parse_boolean(): 1/yes/y/true/t/on and 0/no/n/false/f/off, case-insensitive.
[[nodiscard]] std::optional<bool> parse_boolean(std::string_view s) noexcept;

}  // namespace ca::proto
