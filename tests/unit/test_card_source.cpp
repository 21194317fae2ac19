// SPDX-License-Identifier: MIT
// The pure parts of the card source: which volumes card-early prepares, the
// hex form of responses in the boot cache, and the card-early settings.
#include <boost/test/unit_test.hpp>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/config/card_config.hpp"
#include "agent/sources/boot_volumes.hpp"
#include "proto/hex.hpp"

namespace fs = std::filesystem;
using ca::agent::boot_volume_ids;

namespace {
struct TempDir {
    fs::path path;
    TempDir() {
        std::string t = (fs::temp_directory_path() / "crypt-agent-unit.XXXXXX").string();
        path = ::mkdtemp(t.data());
    }
    ~TempDir() { fs::remove_all(path); }
    fs::path write(const std::string& name, const std::string& text) const {
        std::ofstream(path / name) << text;
        return path / name;
    }
};
const std::string U1 = "9ff154f8-25d3-4ac0-8d9d-0bdc4d581307";
const std::string U2 = "5f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
}  // namespace

BOOST_AUTO_TEST_SUITE(card_source)

BOOST_AUTO_TEST_CASE(boot_volumes_from_the_kernel_command_line) {
    TempDir d;
    // As dracut's and systemd's generators accept them: with and without "luks-", rd.luks.name=UUID=NAME.
    auto cmdline = d.write("cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/mapper/r ro rd.luks.uuid=luks-" + U1 +
                                          " quiet rd.luks.name=" + U2 + "=home rd.luks.uuid=" + U1 +
                                          " rd.luks.uuid=not-a-uuid\n");
    auto ids = boot_volume_ids(cmdline, d.path / "no-crypttab");
    BOOST_TEST(
        ids == (std::vector<std::string>{"cryptsetup:/dev/disk/by-uuid/" + U1, "cryptsetup:/dev/disk/by-uuid/" + U2}),
        boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(boot_volumes_from_crypttab) {
    TempDir d;
    auto crypttab = d.write("crypttab",
                            "# name source key options\n"
                            "root UUID=" +
                                U1 +
                                " none luks\n"
                                "\n"
                                "swap /dev/vda3 /dev/urandom swap\n"
                                "odd LABEL=x none\n");
    auto ids = boot_volume_ids(d.path / "no-cmdline", crypttab);
    // LABEL= resolves as systemd-cryptsetup (and `finish`, which reads the same crypttab) resolves it.
    BOOST_TEST(ids == (std::vector<std::string>{"cryptsetup:/dev/disk/by-uuid/" + U1, "cryptsetup:/dev/vda3",
                                                "cryptsetup:/dev/disk/by-label/x"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(no_files_no_volumes) {
    BOOST_TEST(boot_volume_ids("/nonexistent/cmdline", "/nonexistent/crypttab").empty());
}

BOOST_AUTO_TEST_CASE(response_hex_round_trip) {
    auto back = ca::proto::secret_from_hex(ca::proto::Secret::copy_of(std::string_view("00ff10Ab")).bytes());
    BOOST_REQUIRE(back.has_value());
    const std::vector<unsigned char> want{0x00, 0xff, 0x10, 0xab};
    BOOST_TEST(std::vector<unsigned char>(back->data(), back->data() + back->size()) == want,
               boost::test_tools::per_element());
    const auto text = ca::proto::to_hex_secret(back->bytes());
    BOOST_TEST(std::string(text.data(), text.data() + text.size()) == "00ff10ab");
    BOOST_TEST(!ca::proto::secret_from_hex(ca::proto::Secret::copy_of(std::string_view("abc")).bytes()).has_value());
    BOOST_TEST(!ca::proto::secret_from_hex(ca::proto::Secret::copy_of(std::string_view("zz")).bytes()).has_value());
}

BOOST_AUTO_TEST_CASE(card_early_settings) {
    ca::agent::CardSourceConfig c;
    BOOST_TEST(!c.early.has_value());  // auto
    BOOST_TEST(!ca::agent::apply_card_setting(c, "card-early", "yes").has_value());
    BOOST_TEST(c.early.value_or(false));
    BOOST_TEST(!ca::agent::apply_card_setting(c, "card-early", "auto").has_value());
    BOOST_TEST(!c.early.has_value());
    BOOST_TEST(ca::agent::apply_card_setting(c, "card-early", "sometimes").value_or("") ==
               "card-early: expected yes, no or auto");
    BOOST_TEST(!ca::agent::apply_card_setting(c, "card-early-wait", "2.5").has_value());
    BOOST_TEST(c.early_wait.count() == 2500);
    BOOST_TEST(ca::agent::apply_card_setting(c, "card-early-wait", "0").has_value());
    BOOST_TEST(!ca::agent::apply_card_setting(c, "card-crypttab", "/etc/crypttab.test").has_value());
    BOOST_TEST(c.crypttab == fs::path("/etc/crypttab.test"));
    BOOST_TEST(c.challenge_next);  // card-prepare-rotation defaults to yes
    BOOST_TEST(!ca::agent::apply_card_setting(c, "card-prepare-rotation", "no").has_value());
    BOOST_TEST(!c.challenge_next);
}

BOOST_AUTO_TEST_SUITE_END()
