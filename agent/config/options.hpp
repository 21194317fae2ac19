// SPDX-License-Identifier: MIT
// Settings shared by every command: built from defaults, then the configuration
// file (/etc/crypt-agent.conf, or --config), then the command line, which wins.
// The file uses the long option names as keys ("ask-dir = /run/..."), so what an
// administrator reads in --help is what they write in the file.
//
// Every setting is one row of one table (settings(), agent/config/options.cpp): its name,
// how --help shows it, how a value is parsed into the typed GlobalOptions, and how
// `crypt-agent config` prints it.  The file and every command's command line go
// through that table; nothing else parses a setting.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config/card_config.hpp"
#include "agent/log.hpp"

namespace ca::agent {

enum class KeyringKind { user, session };
enum class Phase { initramfs, root };
// What to do with systemd's own "cryptsetup" keyring entry after harvesting it.
enum class SystemdEntryPolicy { clear, keep };

inline constexpr const char* kDefaultConfigFile = "/etc/crypt-agent.conf";
inline constexpr const char* kDefaultAskDir = "/run/systemd/ask-password";
inline constexpr const char* kDefaultCacheDir = "/run/crypt-agent";

struct GlobalOptions {
    std::filesystem::path config_file = kDefaultConfigFile;
    bool config_file_explicit = false;
    std::filesystem::path ask_dir = kDefaultAskDir;
    KeyringKind keyring = KeyringKind::user;
    std::filesystem::path cache_dir = kDefaultCacheDir;  // tmpfs fallback store, markers, run locks
    Level log_level = Level::info;

    // serve
    Phase phase = Phase::root;
    std::vector<std::string> match = {"cryptsetup:*"};  // Ids to answer
    std::chrono::seconds cache_lifetime{15 * 60};       // hard upper bound of the boot-scoped cache
    bool harvest = true;                                // take systemd's "cryptsetup" entry into the cache
    SystemdEntryPolicy systemd_entry = SystemdEntryPolicy::clear;
    bool push_systemd = false;  // also push our candidates into systemd's entry (wakes AcceptCached=1 askers)
    std::string systemd_key_name = "cryptsetup";

    // finish: rotate the one-time keys of enrolled volumes (auto = when a card is configured).
    enum class Rotate { automatic, yes, no } rotate_on_finish = Rotate::automatic;

    // Smartcard settings ("card-*").
    CardSourceConfig card;
};

[[nodiscard]] const char* to_string(KeyringKind k) noexcept;
[[nodiscard]] const char* to_string(Phase p) noexcept;

// Where --help lists a setting.  Every command accepts every setting.
enum class SettingGroup { common, serve, finish, card };

// One row of the settings table.
struct Setting {
    const char* name;         // the file's key and the long option (--name)
    const char* placeholder;  // shown in --help: "DIR", "yes|no"...
    const char* help;         // one line, with the default
    SettingGroup group;
    bool repeatable;  // each line adds a value; the first one in a source replaces the default
    // Parses `value` into `o`; the reason for a refusal, or nullopt.
    std::optional<std::string> (*apply)(GlobalOptions& o, const std::string& value);
    // Empties a repeatable setting before the first value of a source (nullptr otherwise).
    void (*clear)(GlobalOptions& o);
    // The current value(s), spelt as the file takes them.
    std::vector<std::string> (*show)(const GlobalOptions& o);
};

// The table: every setting, in the order `crypt-agent config` prints them.
[[nodiscard]] std::span<const Setting> settings();
[[nodiscard]] const Setting* find_setting(std::string_view name);

// One source of settings (the file, or the command line): which repeatable
// settings it has already reset to empty.
struct SettingSource {
    std::set<std::string> cleared;
};

// A refused setting: where it came from and why.  `line` is 0 for the command line.
struct ConfigError {
    std::string file;
    unsigned line = 0;
    std::string reason;
    [[nodiscard]] std::string describe() const;
};

// Applies one "name = value" setting (from the file or the command line).
// Returns an error reason, or nullopt when accepted.  Unknown names are errors.
[[nodiscard]] std::optional<std::string> apply_setting(GlobalOptions& o, const std::string& name,
                                                       const std::string& value, SettingSource& source);

// One line of the file: "" for a blank or comment line, else "name = value" split.
// A '#' at the start of a line, or after a space or tab, starts a comment; a '#'
// inside a word (match = vpn#1) is kept.  So a value never ends in " # ...".
struct ConfigLine {
    std::string name, value;
    std::optional<std::string> error;  // "expected 'name = value'"...
    bool empty = true;
};
[[nodiscard]] ConfigLine parse_config_line(const std::string& raw);

// Reads the configuration file into `o`.  A missing default file is fine; a
// missing explicit one, a file another user could have written (not owned by
// root or by us, group- or other-writable; a symlink is judged by its target),
// or any bad line is an error naming file, line and reason.
[[nodiscard]] std::optional<ConfigError> load_config_file(GlobalOptions& o);

// `crypt-agent config`: every setting as "name = value", one per line (a
// repeatable setting once per value, "name =" for an empty list).  The output
// is itself a valid configuration file.
[[nodiscard]] std::string describe_settings(const GlobalOptions& o);

}  // namespace ca::agent
