#include "agent/options.hpp"

#include "agent/card_source.hpp"

#include <charconv>
#include <fstream>

namespace ca::agent {

const char* to_string(KeyringKind k) noexcept { return k == KeyringKind::user ? "user" : "session"; }
const char* to_string(Phase p) noexcept { return p == Phase::initramfs ? "initramfs" : "root"; }

std::string ConfigError::describe() const {
    if (line == 0) return file.empty() ? reason : file + ": " + reason;
    return file + ":" + std::to_string(line) + ": " + reason;
}

namespace {

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::optional<bool> parse_bool(const std::string& v) {
    if (v == "yes" || v == "true" || v == "on" || v == "1") return true;
    if (v == "no" || v == "false" || v == "off" || v == "0") return false;
    return std::nullopt;
}

// "900", "900s", "15min", "1h"
std::optional<std::chrono::seconds> parse_duration(const std::string& v) {
    unsigned long long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p == v.data()) return std::nullopt;
    std::string unit(p, v.data() + v.size());
    unsigned long long mul = 0;
    if (unit.empty() || unit == "s") mul = 1;
    else if (unit == "min" || unit == "m") mul = 60;
    else if (unit == "h") mul = 3600;
    else return std::nullopt;
    if (n == 0 || n > 7ULL * 24 * 3600 / mul) return std::nullopt;
    return std::chrono::seconds(n * mul);
}

}  // namespace

std::optional<std::string> apply_setting(GlobalOptions& o, const std::string& name, const std::string& value,
                                         bool& match_reset) {
    if (name == "ask-dir") {
        if (value.empty() || value.front() != '/') return "ask-dir must be an absolute path";
        o.ask_dir = value;
    } else if (name == "cache-dir") {
        if (value.empty() || value.front() != '/') return "cache-dir must be an absolute path";
        o.cache_dir = value;
    } else if (name == "keyring") {
        if (value == "user") o.keyring = KeyringKind::user;
        else if (value == "session") o.keyring = KeyringKind::session;
        else return "keyring must be 'user' or 'session', not '" + value + "'";
    } else if (name == "log-level") {
        auto l = parse_level(value);
        if (!l) return "log-level must be one of debug, info, notice, warning, err, not '" + value + "'";
        o.log_level = *l;
    } else if (name == "phase") {
        if (value == "initramfs") o.phase = Phase::initramfs;
        else if (value == "root") o.phase = Phase::root;
        else return "phase must be 'initramfs' or 'root', not '" + value + "'";
    } else if (name == "match") {
        if (value.empty()) return "match needs a glob such as 'cryptsetup:*'";
        if (!match_reset) { o.match.clear(); match_reset = true; }
        o.match.push_back(value);
    } else if (name == "cache-lifetime") {
        auto d = parse_duration(value);
        if (!d) return "cache-lifetime must be a duration such as 900, 900s, 15min or 1h (at most 7 days), not '" + value + "'";
        o.cache_lifetime = *d;
    } else if (name == "harvest") {
        auto b = parse_bool(value);
        if (!b) return "harvest must be yes or no, not '" + value + "'";
        o.harvest = *b;
    } else if (name == "push-systemd") {
        auto b = parse_bool(value);
        if (!b) return "push-systemd must be yes or no, not '" + value + "'";
        o.push_systemd = *b;
    } else if (name == "systemd-entry") {
        if (value == "clear") o.systemd_entry = SystemdEntryPolicy::clear;
        else if (value == "keep") o.systemd_entry = SystemdEntryPolicy::keep;
        else return "systemd-entry must be 'clear' or 'keep', not '" + value + "'";
    } else if (name == "systemd-key-name") {
        if (value.empty()) return "systemd-key-name must not be empty";
        o.systemd_key_name = value;
    } else if (name == "rotate-on-finish") {
        if (value == "auto") o.rotate_on_finish = GlobalOptions::Rotate::automatic;
        else if (value == "yes") o.rotate_on_finish = GlobalOptions::Rotate::yes;
        else if (value == "no") o.rotate_on_finish = GlobalOptions::Rotate::no;
        else return "rotate-on-finish must be auto, yes or no, not '" + value + "'";
    } else if (name.rfind("card-", 0) == 0) {
        CardSourceConfig scratch;  // validate now, so a bad line is refused with its line number
        if (auto why = apply_card_setting(scratch, name, value)) return *why;
        o.card_settings.emplace_back(name, value);
    } else {
        return "unknown setting '" + name + "'";
    }
    return std::nullopt;
}

std::optional<ConfigError> load_config_file(GlobalOptions& o) {
    const std::string file = o.config_file.string();
    std::ifstream in(o.config_file);
    if (!in) {
        if (!o.config_file_explicit) return std::nullopt;  // no /etc/crypt-agent.conf: defaults
        return ConfigError{file, 0, "cannot open the configuration file"};
    }
    std::string raw;
    unsigned lineno = 0;
    bool match_reset = false;
    while (std::getline(in, raw)) {
        ++lineno;
        auto line = trim(raw);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line.front() == '[' && line.back() == ']') {
            if (line != "[crypt-agent]") return ConfigError{file, lineno, "unknown section " + line + " (only [crypt-agent])"};
            continue;
        }
        auto eq = line.find('=');
        if (eq == std::string::npos) return ConfigError{file, lineno, "expected 'name = value'"};
        auto name = trim(line.substr(0, eq));
        auto value = trim(line.substr(eq + 1));
        if (name == "config") return ConfigError{file, lineno, "'config' cannot be set inside a configuration file"};
        if (auto why = apply_setting(o, name, value, match_reset)) return ConfigError{file, lineno, *why};
    }
    return std::nullopt;
}

}  // namespace ca::agent
