// Settings shared by every command: built from defaults, then the configuration
// file (/etc/crypt-agent.conf, or --config), then the command line, which wins.
// The file uses the long option names as keys ("ask-dir = /run/..."), so what an
// administrator reads in --help is what they write in the file.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

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
    std::filesystem::path cache_dir = kDefaultCacheDir;  // tmpfs fallback store and markers
    Level log_level = Level::info;

    // serve
    Phase phase = Phase::root;
    std::vector<std::string> match = {"cryptsetup:*"};  // Ids to answer
    std::chrono::seconds cache_lifetime{15 * 60};        // hard upper bound of the boot-scoped cache
    bool harvest = true;                                 // take systemd's "cryptsetup" entry into the cache
    SystemdEntryPolicy systemd_entry = SystemdEntryPolicy::clear;
    bool push_systemd = false;  // also push our candidates into systemd's entry (wakes AcceptCached=1 askers)
    std::string systemd_key_name = "cryptsetup";

    // finish: rotate the one-time keys of enrolled volumes (auto = when a card is configured).
    enum class Rotate { automatic, yes, no } rotate_on_finish = Rotate::automatic;

    // Smartcard settings ("card-*"), validated when set and applied by the card source,
    // in the order given (card-volume repeats).
    std::vector<std::pair<std::string, std::string>> card_settings;

    // Everything else a command did not recognise, for subcommands that parse their own.
    std::vector<std::string> rest;
};

[[nodiscard]] const char* to_string(KeyringKind k) noexcept;
[[nodiscard]] const char* to_string(Phase p) noexcept;

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
                                                       const std::string& value, bool& match_reset);

// Reads the configuration file into `o`.  A missing default file is fine; a
// missing explicit one, or any bad line, is an error naming file and line.
[[nodiscard]] std::optional<ConfigError> load_config_file(GlobalOptions& o);

}  // namespace ca::agent
