// SPDX-License-Identifier: MIT
// Configuration: the file takes the option names; bad values name file, line and reason.
#include <sys/stat.h>
#include <unistd.h>
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <fstream>

#include <set>
#include <utility>

#include "agent/config/options.hpp"

using namespace ca::agent;

namespace {
std::string write_temp(const std::string& text) {
    char path[] = "/tmp/crypt-agent-conf.XXXXXX";
    int fd = mkstemp(path);
    BOOST_REQUIRE(fd >= 0);
    close(fd);
    std::ofstream(path) << text;
    ::chmod(path, 0644);
    return path;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(options)

BOOST_AUTO_TEST_CASE(file_with_every_setting) {
    auto path = write_temp(
        "# comment\n[crypt-agent]\nask-dir = /tmp/ask\nkeyring = session\nmatch = cryptsetup:/dev/vd*\n"
        "match = luks:*\ncache-lifetime = 2min\nlog-level = debug\nsystemd-entry = keep\nharvest = no\n");
    GlobalOptions o;
    o.config_file = path;
    o.config_file_explicit = true;
    auto err = load_config_file(o);
    BOOST_TEST(!err.has_value());
    BOOST_TEST(o.ask_dir == "/tmp/ask");
    BOOST_TEST((o.keyring == KeyringKind::session));
    BOOST_TEST(o.match.size() == 2u);
    BOOST_TEST(o.cache_lifetime.count() == 120);
    BOOST_TEST((o.log_level == Level::debug));
    BOOST_TEST((o.systemd_entry == SystemdEntryPolicy::keep));
    BOOST_TEST(!o.harvest);
    std::remove(path.c_str());
}

BOOST_AUTO_TEST_CASE(bad_value_names_file_and_line) {
    auto path = write_temp("ask-dir = /tmp/ask\n\nkeyring = everywhere\n");
    GlobalOptions o;
    o.config_file = path;
    o.config_file_explicit = true;
    auto err = load_config_file(o);
    BOOST_REQUIRE(err.has_value());
    BOOST_TEST(err->line == 3u);
    BOOST_TEST(err->describe().find(path + ":3: keyring must be") == 0u);
    std::remove(path.c_str());
}

BOOST_AUTO_TEST_CASE(unknown_setting_and_missing_explicit_file) {
    auto path = write_temp("frobnicate = yes\n");
    GlobalOptions o;
    o.config_file = path;
    o.config_file_explicit = true;
    auto err = load_config_file(o);
    BOOST_REQUIRE(err.has_value());
    BOOST_TEST(err->reason.find("unknown setting 'frobnicate'") != std::string::npos);
    std::remove(path.c_str());
    GlobalOptions m;
    m.config_file = "/nonexistent/crypt-agent.conf";
    m.config_file_explicit = true;
    BOOST_TEST(load_config_file(m).has_value());
    m.config_file_explicit = false;  // the default file may be absent
    BOOST_TEST(!load_config_file(m).has_value());
}

BOOST_AUTO_TEST_CASE(durations) {
    GlobalOptions o;
    SettingSource reset;
    BOOST_TEST(!apply_setting(o, "cache-lifetime", "1h", reset).has_value());
    BOOST_TEST(o.cache_lifetime.count() == 3600);
    BOOST_TEST(apply_setting(o, "cache-lifetime", "0", reset).has_value());
    BOOST_TEST(apply_setting(o, "cache-lifetime", "5 parsecs", reset).has_value());
    BOOST_TEST(apply_setting(o, "cache-lifetime", "99999999h", reset).has_value());
}

// Seconds with a fraction, kept to the millisecond (fixed point: no floating-point parser).
BOOST_AUTO_TEST_CASE(seconds_with_fractions) {
    GlobalOptions o;
    SettingSource reset;
    const std::pair<const char*, long> good[] = {{"5", 5000},      {"2.5", 2500},       {"0.25", 250}, {"0.001", 1},
                                                 {"1.0009", 1000}, {"86400", 86400000}, {".5", 500},   {"3.", 3000}};
    for (const auto& [text, ms] : good) {
        BOOST_TEST_CONTEXT(text) {
            BOOST_TEST(!apply_setting(o, "card-watchdog", text, reset).has_value());
            BOOST_TEST(o.card.card.watchdog.count() == ms);
        }
    }
    for (const char* bad :
         {"0", "0.0004", "", ".", "-1", "1e3", "2,5", "86400.001", "99999999999999999999", "5s", " 5", "inf", "nan"}) {
        BOOST_TEST_CONTEXT(bad) {
            const auto err = apply_setting(o, "card-watchdog", bad, reset);
            BOOST_TEST(err.has_value());
            if (err) BOOST_TEST(err->find("positive number of seconds") != std::string::npos);
        }
    }
}

// Booleans are spelt as systemd spells them (proto::parse_boolean, as the ask files' keys).
BOOST_AUTO_TEST_CASE(booleans_as_systemd_spells_them) {
    GlobalOptions o;
    SettingSource reset;
    BOOST_TEST(!apply_setting(o, "harvest", "No", reset).has_value());
    BOOST_TEST(!o.harvest);
    BOOST_TEST(!apply_setting(o, "harvest", "t", reset).has_value());
    BOOST_TEST(o.harvest);
    BOOST_TEST(!apply_setting(o, "harvest", "off", reset).has_value());
    BOOST_TEST(!o.harvest);
    BOOST_TEST(apply_setting(o, "harvest", "maybe", reset).has_value());
    BOOST_TEST(apply_setting(o, "harvest", "", reset).has_value());
}

// Issue 13 item 10: "key = value   # comment" in the file; a path never takes the comment.
BOOST_AUTO_TEST_CASE(trailing_comments) {
    auto path = write_temp(
        "card-enable = yes   # answer enrolled volumes\n"
        "card-luks1-dir = /boot/crypt-agent # the seed store\n"
        "match = vpn#1\t# a '#' inside a word is kept\n"
        "# a comment line\n   ; an ini-style one\n");
    GlobalOptions o;
    o.config_file = path;
    o.config_file_explicit = true;
    auto err = load_config_file(o);
    BOOST_TEST(!err.has_value(), (err ? err->describe() : ""));
    BOOST_TEST(o.card.enable);
    BOOST_TEST(o.card.luks1_dir == "/boot/crypt-agent");
    BOOST_REQUIRE(o.match.size() == 1u);
    BOOST_TEST(o.match[0] == "vpn#1");
    std::remove(path.c_str());
    BOOST_TEST(parse_config_line("#x = y").empty);
    BOOST_TEST(parse_config_line("x = a#b").value == "a#b");
    BOOST_TEST(parse_config_line("x = a #b").value == "a");
}

// Issue 13 item 5: a file another user could have written is refused with the reason.
BOOST_AUTO_TEST_CASE(writable_configuration_is_refused) {
    auto path = write_temp("match = *\n");
    ::chmod(path.c_str(), 0666);
    GlobalOptions o;
    o.config_file = path;
    o.config_file_explicit = true;
    auto err = load_config_file(o);
    BOOST_REQUIRE(err.has_value());
    BOOST_TEST(err->describe() == path + ": configuration file refused: writable by other users (mode 0666)");
    BOOST_TEST(o.match.size() == 1u);
    BOOST_TEST(o.match[0] == "cryptsetup:*");  // nothing of the file applied
    ::chmod(path.c_str(), 0620);
    err = load_config_file(o);
    BOOST_REQUIRE(err.has_value());
    BOOST_TEST(err->reason.find("writable by its group (mode 0620)") != std::string::npos);
    if (::geteuid() == 0) {
        ::chmod(path.c_str(), 0644);
        BOOST_REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);
        err = load_config_file(o);
        BOOST_REQUIRE(err.has_value());
        BOOST_TEST(err->reason.find("owned by uid 65534, not by root") != std::string::npos);
    }
    std::remove(path.c_str());
}

// Every row of the table parses what it prints, and `config` prints every row.
BOOST_AUTO_TEST_CASE(config_output_is_a_configuration) {
    GlobalOptions o;
    SettingSource src;
    BOOST_TEST(
        !apply_setting(o, "card-volume", "cryptsetup:/dev/vda2 0b7c5a6e-2f3d-4a1b-9c8d-7e6f5a4b3c2d", src).has_value());
    BOOST_TEST(!apply_setting(o, "card-aid", "A0 00 00 00 01", src).has_value());
    BOOST_TEST(!apply_setting(o, "card-early-wait", "2.5", src).has_value());
    BOOST_TEST(!apply_setting(o, "card-pin-reference", "none", src).has_value());
    const auto text = describe_settings(o);
    std::set<std::string> names;
    for (const auto& s : settings()) {
        BOOST_TEST_CONTEXT(s.name) {
            const bool shown = text.find(std::string("\n") + s.name + " =") != std::string::npos ||
                               text.rfind(std::string(s.name) + " =", 0) == 0;
            BOOST_TEST(shown);
            BOOST_TEST(names.insert(s.name).second);  // no name twice
            BOOST_TEST((s.repeatable == (s.clear != nullptr)));
        }
    }
    auto path = write_temp(text);
    GlobalOptions back;
    back.config_file = path;
    back.config_file_explicit = true;
    auto err = load_config_file(back);
    BOOST_TEST(!err.has_value(), (err ? err->describe() : ""));
    BOOST_TEST(describe_settings(back) == text);
    std::remove(path.c_str());
}

BOOST_AUTO_TEST_SUITE_END()
