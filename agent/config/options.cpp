// SPDX-License-Identifier: MIT
// Over 400 lines on purpose: most of it is kSettings, the one table of every setting (one
// row each: name, help, group, parse, show); the file, every command line, --help and
// `crypt-agent config` read it, and a second file would be a second place to add a setting.
#include "agent/config/options.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "proto/ask_file.hpp"
#include "smartcard/pkcs11_uri.hpp"
#include "smartcard/profile.hpp"

namespace ca::agent {

const char* to_string(KeyringKind k) noexcept { return k == KeyringKind::user ? "user" : "session"; }
const char* to_string(Phase p) noexcept { return p == Phase::initramfs ? "initramfs" : "root"; }

std::string ConfigError::describe() const {
    if (line == 0) return file.empty() ? reason : file + ": " + reason;
    return file + ":" + std::to_string(line) + ": " + reason;
}

namespace {

namespace sc = ca::smartcard;
using Why = std::optional<std::string>;
using Values = std::vector<std::string>;

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// systemd's words for a boolean (yes/no, true/false, on/off, 1/0, y/n, t/f, any case): the
// same parser as the ask files' AcceptCached= and Echo=, so one spelling works everywhere.
std::optional<bool> parse_bool(const std::string& v) { return proto::parse_boolean(v); }

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

// Positive seconds, fractions allowed ("2.5", "0.25"), at most a day, kept to the
// millisecond.  Fixed point on purpose: std::from_chars of a double brings libstdc++'s
// floating_from_chars (and with it libm) into a binary that never needs floating point.
std::optional<std::chrono::milliseconds> parse_seconds(const std::string& v) {
    constexpr std::uint64_t kMaxMs = 86400ULL * 1000;
    std::uint64_t ms = 0;
    std::size_t i = 0;
    for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) {
        ms = ms * 10 + static_cast<std::uint64_t>(v[i] - '0') * 1000;
        if (ms > kMaxMs) return std::nullopt;
    }
    const std::size_t int_digits = i;
    std::size_t frac_digits = 0;
    if (i < v.size() && v[i] == '.') {
        std::uint64_t scale = 100;
        for (++i; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i, ++frac_digits) {
            ms += static_cast<std::uint64_t>(v[i] - '0') * scale;  // digits past the third add 0
            scale /= 10;
        }
    }
    if (i != v.size() || int_digits + frac_digits == 0 || ms == 0 || ms > kMaxMs) return std::nullopt;
    return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

std::string yes_no(bool b) { return b ? "yes" : "no"; }

std::string seconds_text(std::chrono::milliseconds ms) {
    if (ms.count() % 1000 == 0) return std::to_string(ms.count() / 1000);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ms.count()) / 1000.0);
    std::string s = buf;
    while (s.back() == '0') s.pop_back();
    return s;
}

Why absolute(const std::string& name, const std::string& v) {
    if (v.empty() || v.front() != '/') return name + " must be an absolute path, not '" + v + "'";
    return std::nullopt;
}

Why boolean(bool& out, const std::string& value) {
    auto b = parse_bool(value);
    if (!b) return "expected yes or no, not '" + value + "'";
    out = *b;
    return std::nullopt;
}

Why profile_field(GlobalOptions& o, const char* key, const std::string& value) {
    if (auto st = sc::set_profile_field(o.card.card.profile, key, value); !st) return st.error().message;
    return std::nullopt;
}

Why seconds_into(std::chrono::milliseconds& out, const std::string& value) {
    auto s = parse_seconds(value);
    if (!s) return "expected a positive number of seconds (at most 86400), not '" + value + "'";
    out = *s;
    return std::nullopt;
}

// The table.  To add a setting: a field in GlobalOptions (or CardSourceConfig), and one
// row here (name, placeholder, help with the default, group, repeatable, parse, clear,
// show).  The file, every command's options, --help and `crypt-agent config` follow.
const Setting kSettings[] = {
    // ---- every command
    {"ask-dir", "DIR", "ask-password directory (default /run/systemd/ask-password)", SettingGroup::common, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (auto e = absolute("ask-dir", v)) return e;
         o.ask_dir = v;
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{o.ask_dir.string()}; }},
    {"keyring", "user|session",
     "keyring of the cache: 'user' is root's user keyring (default, survives switch-root); 'session' is for "
     "tests and demos",
     SettingGroup::common, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (v == "user") o.keyring = KeyringKind::user;
         else if (v == "session") o.keyring = KeyringKind::session;
         else return "keyring must be 'user' or 'session', not '" + v + "'";
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{to_string(o.keyring)}; }},
    {"cache-dir", "DIR", "directory of the tmpfs fallback store, markers and run locks (default /run/crypt-agent)",
     SettingGroup::common, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (auto e = absolute("cache-dir", v)) return e;
         o.cache_dir = v;
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{o.cache_dir.string()}; }},
    {"log-level", "LEVEL", "debug, info (default), notice, warning or err", SettingGroup::common, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         auto l = parse_level(v);
         if (!l) return "log-level must be one of debug, info, notice, warning, err, not '" + v + "'";
         o.log_level = *l;
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{to_string(o.log_level)}; }},

    // ---- serve
    {"phase", "initramfs|root", "which boot phase this instance serves (default root)", SettingGroup::serve, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (v == "initramfs") o.phase = Phase::initramfs;
         else if (v == "root") o.phase = Phase::root;
         else return "phase must be 'initramfs' or 'root', not '" + v + "'";
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{to_string(o.phase)}; }},
    {"match", "GLOB", "question Ids to answer, repeatable (default 'cryptsetup:*'); others are left to other agents",
     SettingGroup::serve, true,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (v.empty()) return "match needs a glob such as 'cryptsetup:*'";
         o.match.push_back(v);
         return std::nullopt;
     },
     [](GlobalOptions& o) { o.match.clear(); }, [](const GlobalOptions& o) { return o.match; }},
    {"cache-lifetime", "DURATION",
     "hard upper bound of a new cache: 900, 15min, 1h (default 15min); enforced by the kernel and the agent",
     SettingGroup::serve, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         auto d = parse_duration(v);
         if (!d)
             return "cache-lifetime must be a duration such as 900, 900s, 15min or 1h (at most 7 days), not '" + v +
                    "'";
         o.cache_lifetime = *d;
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{std::to_string(o.cache_lifetime.count()) + "s"}; }},
    {"harvest", "yes|no",
     "take passphrases typed for one volume (systemd's 'cryptsetup' keyring entry) into the cache (default yes)",
     SettingGroup::serve, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (auto e = boolean(o.harvest, v)) return "harvest: " + *e;
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{yes_no(o.harvest)}; }},
    {"systemd-entry", "clear|keep",
     "after harvesting, clear systemd's entry so it is not tried silently on volumes it does not open (default clear)",
     SettingGroup::serve, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (v == "clear") o.systemd_entry = SystemdEntryPolicy::clear;
         else if (v == "keep") o.systemd_entry = SystemdEntryPolicy::keep;
         else return "systemd-entry must be 'clear' or 'keep', not '" + v + "'";
         return std::nullopt;
     },
     nullptr,
     [](const GlobalOptions& o) { return Values{o.systemd_entry == SystemdEntryPolicy::clear ? "clear" : "keep"}; }},
    {"push-systemd", "yes|no", "also push candidates into systemd's entry (default no)", SettingGroup::serve, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (auto e = boolean(o.push_systemd, v)) return "push-systemd: " + *e;
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{yes_no(o.push_systemd)}; }},
    {"systemd-key-name", "NAME", "name of systemd's keyring entry (default cryptsetup)", SettingGroup::serve, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (v.empty()) return "systemd-key-name must not be empty";
         o.systemd_key_name = v;
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{o.systemd_key_name}; }},

    // ---- finish
    {"rotate-on-finish", "auto|yes|no",
     "rotate enrolled volumes' keys after flushing (default auto: when a card is configured)", SettingGroup::finish,
     false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (v == "auto") o.rotate_on_finish = GlobalOptions::Rotate::automatic;
         else if (v == "yes") o.rotate_on_finish = GlobalOptions::Rotate::yes;
         else if (v == "no") o.rotate_on_finish = GlobalOptions::Rotate::no;
         else return "rotate-on-finish must be auto, yes or no, not '" + v + "'";
         return std::nullopt;
     },
     nullptr,
     [](const GlobalOptions& o) {
         return Values{o.rotate_on_finish == GlobalOptions::Rotate::automatic ? "auto"
                       : o.rotate_on_finish == GlobalOptions::Rotate::yes     ? "yes"
                                                                              : "no"};
     }},

    // ---- smartcard (serve, finish, enroll, rotate, card)
    {"card-enable", "yes|no", "derive keys from a smartcard for enrolled volumes (default no)", SettingGroup::card,
     false, [](GlobalOptions& o, const std::string& v) { return boolean(o.card.enable, v); }, nullptr,
     [](const GlobalOptions& o) { return Values{yes_no(o.card.enable)}; }},
    {"card-volume", "\"ID UUID\"",
     "answer question ID with the card key of the LUKS volume UUID (with card-seed-file), repeatable",
     SettingGroup::card, true,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (v.empty()) return std::nullopt;  // "card-volume =": none (as `crypt-agent config` prints it)
         const auto sp = v.find_last_of(" \t");
         if (sp == std::string::npos || sp == 0) return "expected \"QUESTION-ID UUID\"";
         std::string id = v.substr(0, sp);
         while (!id.empty() && (id.back() == ' ' || id.back() == '\t')) id.pop_back();
         const std::string uuid = v.substr(sp + 1);
         if (uuid.size() != 36 || uuid[8] != '-' || uuid[13] != '-' || uuid[18] != '-' || uuid[23] != '-')
             return "\"" + uuid + "\" is not a LUKS UUID (8-4-4-4-12 hex digits)";
         o.card.volumes[id] = uuid;
         return std::nullopt;
     },
     [](GlobalOptions& o) { o.card.volumes.clear(); },
     [](const GlobalOptions& o) {
         Values out;
         for (const auto& [id, uuid] : o.card.volumes) out.push_back(id + " " + uuid);
         return out;
     }},
    {"card-seed-file", "FILE", "seed for card-volume lines (before enrolment)", SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (!v.empty())
             if (auto e = absolute("card-seed-file", v)) return e;
         o.card.seed_file = v;
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{o.card.seed_file.string()}; }},
    {"card-luks-tokens", "yes|no", "read seeds from enrolled volumes (default yes)", SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) { return boolean(o.card.luks_tokens, v); }, nullptr,
     [](const GlobalOptions& o) { return Values{yes_no(o.card.luks_tokens)}; }},
    {"card-luks1-dir", "DIR",
     "seed store of LUKS1 volumes, readable in the initramfs (default " CRYPT_AGENT_LUKS1_STORE ")", SettingGroup::card,
     false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (auto e = absolute("card-luks1-dir", v)) return e;
         o.card.luks1_dir = v;
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{o.card.luks1_dir}; }},
    {"card-crypttab", "FILE",
     "crypttab whose volumes card-early prepares and finish and rotate rotate (default /etc/crypttab)",
     SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (auto e = absolute("card-crypttab", v)) return e;
         o.card.crypttab = v;
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{o.card.crypttab.string()}; }},
    {"card-reader", "SUBSTRING", "use only readers whose name contains this (default any)", SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         o.card.card.reader_filter = v;
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{o.card.card.reader_filter}; }},
    {"card-profile-name", "NAME", "name of the card profile, shown in logs", SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) { return profile_field(o, "name", v); }, nullptr,
     [](const GlobalOptions& o) { return Values{o.card.card.profile.name}; }},
    {"card-aid", "HEX", "application to SELECT before the challenge (default none)", SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (v.empty()) {
             o.card.card.profile.aid.clear();
             return std::nullopt;
         }
         return profile_field(o, "aid", v);
     },
     nullptr, [](const GlobalOptions& o) { return Values{sc::hex(o.card.card.profile.aid)}; }},
    {"card-select-p2", "HEX", "SELECT's P2: 00 (default, OpenPGP cards, as scdaemon sends it) or 0C",
     SettingGroup::card, false, [](GlobalOptions& o, const std::string& v) { return profile_field(o, "select-p2", v); },
     nullptr,
     [](const GlobalOptions& o) {
         const unsigned char b[] = {o.card.card.profile.select_p2};
         return Values{sc::hex(b)};
     }},
    {"card-command", "CLAINSP1P2", "challenge command (default 00880600)", SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) { return profile_field(o, "command", v); }, nullptr,
     [](const GlobalOptions& o) {
         const auto& p = o.card.card.profile;
         const unsigned char c[] = {p.cla, p.ins, p.p1, p.p2};
         return Values{sc::hex(c)};
     }},
    {"card-challenge-length", "N", "challenge length in bytes (default 32)", SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) { return profile_field(o, "challenge-length", v); }, nullptr,
     [](const GlobalOptions& o) { return Values{std::to_string(o.card.card.profile.challenge_length)}; }},
    {"card-pin-reference", "HEX|none", "PIN reference for VERIFY (default 80; none: the card needs no PIN)",
     SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) { return profile_field(o, "pin-reference", v); }, nullptr,
     [](const GlobalOptions& o) {
         const auto& r = o.card.card.profile.pin_reference;
         if (!r) return Values{"none"};
         const unsigned char b[] = {*r};
         return Values{sc::hex(b)};
     }},
    {"card-watchdog", "SECONDS", "abandon a card that does not answer within this time (default 5)", SettingGroup::card,
     false, [](GlobalOptions& o, const std::string& v) { return seconds_into(o.card.card.watchdog, v); }, nullptr,
     [](const GlobalOptions& o) { return Values{seconds_text(o.card.card.watchdog)}; }},
    {"card-pin-timeout", "SECONDS", "how long to wait for the PIN (default 180)", SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         std::chrono::milliseconds ms{};
         if (auto e = seconds_into(ms, v)) return e;
         o.card.pin_timeout = std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(ms));
         return std::nullopt;
     },
     nullptr, [](const GlobalOptions& o) { return Values{std::to_string(o.card.pin_timeout.count())}; }},
    {"card-wait", "SECONDS", "how long enroll, rotate and card derive wait for a usable card (default 30)",
     SettingGroup::card, false, [](GlobalOptions& o, const std::string& v) { return seconds_into(o.card.wait, v); },
     nullptr, [](const GlobalOptions& o) { return Values{seconds_text(o.card.wait)}; }},
    {"card-allow-last-pin-try", "yes|no", "allow trying a PIN with one try left (default no)", SettingGroup::card,
     false, [](GlobalOptions& o, const std::string& v) { return boolean(o.card.card.allow_last_pin_try, v); }, nullptr,
     [](const GlobalOptions& o) { return Values{yes_no(o.card.card.allow_last_pin_try)}; }},
    // PKCS#11: card-uri or card-module chooses the backend (the module is loaded only then);
    // card-pin-pad alone does not.
    {"card-uri", "pkcs11:...|auto",
     "PKCS#11 key (RFC 7512 URI, or auto: the one usable key); chooses the PKCS#11 backend (default none: the "
     "APDU profile)",
     SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (v.empty()) {  // "card-uri =": the APDU profile (as `crypt-agent config` prints it)
             o.card.card.pkcs11.reset();
             return std::nullopt;
         }
         if (auto uri = sc::parse_pkcs11_uri(v); !uri) return uri.error().message;
         if (!o.card.card.pkcs11) o.card.card.pkcs11.emplace();
         o.card.card.pkcs11->uri = v;
         return std::nullopt;
     },
     nullptr,
     [](const GlobalOptions& o) { return Values{o.card.card.pkcs11 ? o.card.card.pkcs11->uri : std::string()}; }},
    {"card-module", "PATH",
     "PKCS#11 module; chooses the PKCS#11 backend (default p11-kit's proxy, when card-uri is set)", SettingGroup::card,
     false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (v.empty()) {  // "card-module =": p11-kit's proxy; does not choose the backend
             if (o.card.card.pkcs11) o.card.card.pkcs11->module.clear();
             return std::nullopt;
         }
         if (!o.card.card.pkcs11) o.card.card.pkcs11.emplace();
         o.card.card.pkcs11->module = v;
         return std::nullopt;
     },
     nullptr,
     [](const GlobalOptions& o) { return Values{o.card.card.pkcs11 ? o.card.card.pkcs11->module : std::string()}; }},
    {"card-pin-pad", "auto|yes|no",
     "PKCS#11: log in on the reader's PIN pad (default auto: when the token says it has one)", SettingGroup::card,
     false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         using P = sc::Pkcs11Options::PinPad;
         if (v == "auto") o.card.card.pin_pad = P::automatic;
         else if (v == "yes") o.card.card.pin_pad = P::yes;
         else if (v == "no") o.card.card.pin_pad = P::no;
         else return "expected auto, yes or no, not '" + v + "'";
         return std::nullopt;
     },
     nullptr,
     [](const GlobalOptions& o) {
         using P = sc::Pkcs11Options::PinPad;
         const P p = o.card.card.pin_pad;
         return Values{p == P::automatic ? "auto" : p == P::yes ? "yes" : "no"};
     }},
    {"card-early", "yes|no|auto", "ask the card at start-up, before READY=1 (default auto: in the initramfs)",
     SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) -> Why {
         if (v == "auto") {
             o.card.early.reset();
             return std::nullopt;
         }
         auto b = parse_bool(v);
         if (!b) return "expected yes, no or auto";
         o.card.early = *b;
         return std::nullopt;
     },
     nullptr,
     [](const GlobalOptions& o) { return Values{o.card.early ? yes_no(*o.card.early) : std::string("auto")}; }},
    {"card-early-wait", "SECONDS", "how long card-early holds READY=1 without a card (default 15)", SettingGroup::card,
     false, [](GlobalOptions& o, const std::string& v) { return seconds_into(o.card.early_wait, v); }, nullptr,
     [](const GlobalOptions& o) { return Values{seconds_text(o.card.early_wait)}; }},
    {"card-prepare-rotation", "yes|no",
     "challenge the next seed in the boot's card operation, so finish rotates without the card (default yes)",
     SettingGroup::card, false,
     [](GlobalOptions& o, const std::string& v) { return boolean(o.card.challenge_next, v); }, nullptr,
     [](const GlobalOptions& o) { return Values{yes_no(o.card.challenge_next)}; }},
};

}  // namespace

std::span<const Setting> settings() { return kSettings; }

const Setting* find_setting(std::string_view name) {
    for (const auto& s : kSettings)
        if (name == s.name) return &s;
    return nullptr;
}

std::optional<std::string> apply_setting(GlobalOptions& o, const std::string& name, const std::string& value,
                                         SettingSource& source) {
    const Setting* s = find_setting(name);
    if (!s) return "unknown setting '" + name + "'";
    if (s->clear && source.cleared.insert(name).second) s->clear(o);
    auto why = s->apply(o, value);
    if (why && why->rfind(name, 0) != 0) return name + ": " + *why;  // every reason names its setting
    return why;
}

std::optional<std::string> apply_card_setting(CardSourceConfig& c, const std::string& name, const std::string& value) {
    if (name.rfind("card-", 0) != 0) return "unknown setting '" + name + "'";
    GlobalOptions o;
    o.card = std::move(c);
    SettingSource source;
    source.cleared.insert(name);  // add to what c holds
    auto why = apply_setting(o, name, value, source);
    c = std::move(o.card);
    return why;
}

ConfigLine parse_config_line(const std::string& raw) {
    ConfigLine out;
    // Comments: from a '#' (or ';') that starts the line, or a '#' after a blank.
    std::string text = raw;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t')) {
            text.resize(i);
            break;
        }
    }
    const auto line = trim(text);
    if (line.empty() || line[0] == ';') return out;
    out.empty = false;
    if (line.front() == '[' && line.back() == ']') {
        if (line != "[crypt-agent]") out.error = "unknown section " + line + " (only [crypt-agent])";
        else out.empty = true;
        return out;
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) {
        out.error = "expected 'name = value'";
        return out;
    }
    out.name = trim(line.substr(0, eq));
    out.value = trim(line.substr(eq + 1));
    return out;
}

std::optional<ConfigError> load_config_file(GlobalOptions& o) {
    const std::string file = o.config_file.string();
    // Opened once and judged by what was opened (fstat), so a rename between a check and
    // the read cannot slip another file in.  O_NONBLOCK: a FIFO planted there must not
    // hang the agent's start.
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        const int e = errno;
        if (e == ENOENT && !o.config_file_explicit) return std::nullopt;  // no /etc/crypt-agent.conf: defaults
        return ConfigError{file, 0, std::string("cannot open the configuration file: ") + std::strerror(e)};
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        return ConfigError{file, 0, std::string("cannot stat the configuration file: ") + std::strerror(e)};
    }
    // As sshd does: a file another user could have written would let that user choose
    // which questions get the disk's secret (match = *).  A symlink is judged by its target.
    std::string refused;
    if (!S_ISREG(st.st_mode)) refused = "not a regular file";
    else if (st.st_uid != 0 && st.st_uid != ::geteuid())
        refused = "owned by uid " + std::to_string(st.st_uid) + ", not by root";
    else if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        refused = std::string("writable by ") + ((st.st_mode & S_IWOTH) ? "other users" : "its group") + " (mode " +
                  mode + ")";
    }
    if (!refused.empty()) {
        ::close(fd);
        return ConfigError{file, 0, "configuration file refused: " + refused};
    }
    std::string content;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int e = errno;
            ::close(fd);
            return ConfigError{file, 0, std::string("cannot read the configuration file: ") + std::strerror(e)};
        }
        if (n == 0) break;
        content.append(buf, static_cast<std::size_t>(n));
        if (content.size() > (1U << 20)) {
            ::close(fd);
            return ConfigError{file, 0, "configuration file larger than 1 MiB"};
        }
    }
    ::close(fd);

    std::istringstream in(content);
    std::string raw;
    unsigned lineno = 0;
    SettingSource source;
    while (std::getline(in, raw)) {
        ++lineno;
        const auto line = parse_config_line(raw);
        if (line.error) return ConfigError{file, lineno, *line.error};
        if (line.empty) continue;
        if (line.name == "config")
            return ConfigError{file, lineno, "'config' cannot be set inside a configuration file"};
        if (auto why = apply_setting(o, line.name, line.value, source)) return ConfigError{file, lineno, *why};
    }
    return std::nullopt;
}

std::string describe_settings(const GlobalOptions& o) {
    std::string out;
    for (const auto& s : kSettings) {
        const auto values = s.show(o);
        if (values.empty()) out += std::string(s.name) + " =\n";
        for (const auto& v : values) out += std::string(s.name) + " = " + v + "\n";
    }
    return out;
}

}  // namespace ca::agent
