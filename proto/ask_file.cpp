// SPDX-License-Identifier: MIT
#include "proto/ask_file.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace ca::proto {

const char* to_string(AskError e) noexcept {
    switch (e) {
    case AskError::too_large: return "too-large";
    case AskError::binary: return "binary";
    case AskError::no_section: return "no-section";
    case AskError::bad_line: return "bad-line";
    case AskError::duplicate_key: return "duplicate-key";
    case AskError::bad_number: return "bad-number";
    case AskError::bad_boolean: return "bad-boolean";
    case AskError::missing_pid: return "missing-pid";
    case AskError::missing_socket: return "missing-socket";
    case AskError::bad_socket: return "bad-socket";
    }
    return "unknown";
}

namespace {

constexpr std::string_view kWhitespace = " \t\r";
// sizeof(sockaddr_un::sun_path) on Linux, minus the terminating NUL.
constexpr std::size_t kSunPathMax = 107;

std::string_view trim(std::string_view s) {
    const auto b = s.find_first_not_of(kWhitespace);
    if (b == std::string_view::npos) return {};
    const auto e = s.find_last_not_of(kWhitespace);
    return s.substr(b, e - b + 1);
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               auto lx = (x >= 'A' && x <= 'Z') ? static_cast<char>(x - 'A' + 'a') : x;
               auto ly = (y >= 'A' && y <= 'Z') ? static_cast<char>(y - 'A' + 'a') : y;
               return lx == ly;
           });
}

template <class Int>
std::optional<Int> parse_decimal(std::string_view s) {
    if (s.empty() || s.front() == '+' || s.front() == '-') return std::nullopt;
    Int v{};
    const auto* end = s.data() + s.size();
    auto [p, ec] = std::from_chars(s.data(), end, v, 10);
    if (ec != std::errc() || p != end) return std::nullopt;
    return v;
}

enum Key : unsigned { kPid, kSocket, kAcceptCached, kEcho, kNotAfter, kSilent, kMessage, kIcon, kId, kKeyCount };
constexpr std::array<std::string_view, kKeyCount> kKeyNames = {"PID",    "Socket",  "AcceptCached", "Echo", "NotAfter",
                                                               "Silent", "Message", "Icon",         "Id"};

AskParseError err(AskError k, unsigned line, std::string reason) { return {k, line, std::move(reason)}; }

}  // namespace

std::optional<bool> parse_boolean(std::string_view s) noexcept {
    for (const auto* t : {"1", "yes", "y", "true", "t", "on"})
        if (iequals(s, t)) return true;
    for (const auto* f : {"0", "no", "n", "false", "f", "off"})
        if (iequals(s, f)) return false;
    return std::nullopt;
}

Expected<Question, AskParseError> parse_ask_file(std::string_view text) {
    if (text.size() > kAskFileMaxSize)
        return unexpected(
            err(AskError::too_large, 0,
                "file is " + std::to_string(text.size()) + " bytes, the limit is " + std::to_string(kAskFileMaxSize)));

    Question q;
    std::array<unsigned, kKeyCount> seen_at{};  // line where each key was seen, 0 = not seen
    bool in_ask = false, saw_ask = false;
    unsigned lineno = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        ++lineno;
        auto nl = text.find('\n', pos);
        std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = (nl == std::string_view::npos) ? text.size() : nl + 1;

        for (unsigned char c : raw)
            if (c == 0 || (c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
                return unexpected(err(AskError::binary, lineno, "control byte in the file"));

        auto line = trim(raw);
        if (line.empty() || line.front() == '#' || line.front() == ';') continue;
        if (line.front() == '[') {
            if (line.back() != ']') return unexpected(err(AskError::bad_line, lineno, "unterminated section header"));
            in_ask = line == "[Ask]";
            saw_ask = saw_ask || in_ask;
            continue;
        }
        const auto eq = line.find('=');
        if (eq == std::string_view::npos) return unexpected(err(AskError::bad_line, lineno, "expected Key=Value"));
        if (!in_ask) continue;  // keys of other sections are not ours to judge
        const auto key = trim(line.substr(0, eq));
        const auto value = trim(line.substr(eq + 1));

        const auto* const it = std::find(kKeyNames.begin(), kKeyNames.end(), key);
        if (it == kKeyNames.end()) continue;  // unknown keys are ignored, as systemd does
        const auto k = static_cast<Key>(it - kKeyNames.begin());
        if (seen_at[k] != 0)
            return unexpected(
                err(AskError::duplicate_key, lineno,
                    std::string(key) + "= given twice (first on line " + std::to_string(seen_at[k]) + ")"));
        seen_at[k] = lineno;

        auto boolean = [&](bool& out) -> std::optional<AskParseError> {
            auto b = parse_boolean(value);
            if (!b) return err(AskError::bad_boolean, lineno, std::string(key) + "= is not a boolean");
            out = *b;
            return std::nullopt;
        };
        std::optional<AskParseError> e;
        switch (k) {
        case kPid: {
            auto v = parse_decimal<std::int64_t>(value);
            // pid_t is 32-bit; the kernel's pid_max is at most 2^22.
            if (!v || *v <= 0 || *v > INT32_MAX)
                e = err(AskError::bad_number, lineno, "PID= is not a positive process ID");
            else q.pid = *v;
            break;
        }
        case kNotAfter: {
            auto v = parse_decimal<std::uint64_t>(value);
            if (!v) e = err(AskError::bad_number, lineno, "NotAfter= is not an unsigned 64-bit number");
            else q.not_after_us = *v;
            break;
        }
        case kSocket:
            if (value.empty() || value.front() != '/')
                e = err(AskError::bad_socket, lineno, "Socket= is not an absolute path");
            else if (value.size() > kSunPathMax)
                e = err(AskError::bad_socket, lineno, "Socket= is longer than a socket address can hold");
            else q.socket = std::string(value);
            break;
        case kAcceptCached: e = boolean(q.accept_cached); break;
        case kEcho: e = boolean(q.echo); break;
        case kSilent: e = boolean(q.silent); break;
        case kMessage: q.message = std::string(value); break;
        case kIcon: q.icon = std::string(value); break;
        case kId: q.id = std::string(value); break;
        case kKeyCount: break;
        }
        if (e) return unexpected(std::move(*e));
    }
    if (!saw_ask) return unexpected(err(AskError::no_section, 0, "no [Ask] section"));
    if (seen_at[kPid] == 0) return unexpected(err(AskError::missing_pid, 0, "no PID= in [Ask]"));
    if (seen_at[kSocket] == 0) return unexpected(err(AskError::missing_socket, 0, "no Socket= in [Ask]"));
    return q;
}

}  // namespace ca::proto
