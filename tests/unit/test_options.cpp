// Configuration: the file takes the option names; bad values name file, line and reason.
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <fstream>
#include <unistd.h>

#include "agent/options.hpp"

using namespace ca::agent;

namespace {
std::string write_temp(const std::string& text) {
    char path[] = "/tmp/crypt-agent-conf.XXXXXX";
    int fd = mkstemp(path);
    BOOST_REQUIRE(fd >= 0);
    close(fd);
    std::ofstream(path) << text;
    return path;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(options)

BOOST_AUTO_TEST_CASE(file_with_every_setting) {
    auto path = write_temp("# comment\n[crypt-agent]\nask-dir = /tmp/ask\nkeyring = session\nmatch = cryptsetup:/dev/vd*\n"
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
    bool reset = false;
    BOOST_TEST(!apply_setting(o, "cache-lifetime", "1h", reset).has_value());
    BOOST_TEST(o.cache_lifetime.count() == 3600);
    BOOST_TEST(apply_setting(o, "cache-lifetime", "0", reset).has_value());
    BOOST_TEST(apply_setting(o, "cache-lifetime", "5 parsecs", reset).has_value());
    BOOST_TEST(apply_setting(o, "cache-lifetime", "99999999h", reset).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
