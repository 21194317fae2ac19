// SPDX-License-Identifier: MIT
// AnsweredLog: what one instance records before its sends, the next one reads back, on a real
// file in a temporary directory; socket_queue asks the real kernel about a real socket.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "agent/answer/answered_log.hpp"

using ca::agent::AnsweredLog;
using ca::agent::AskIdentity;
using ca::agent::SocketIdentity;

namespace {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/ca-answered-XXXXXX";
        BOOST_REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

AskIdentity key(std::uint64_t n) {
    return AskIdentity{42, ca::agent::name_hash("ask.q" + std::to_string(n)), 1000 + n, 77 + n};
}
SocketIdentity sock(std::uint64_t n) { return SocketIdentity{42, 5000 + n}; }

// A first instance on `dir` that has recorded replies to questions 1..n (not confirmed).
std::unique_ptr<AnsweredLog> fresh(const std::filesystem::path& dir, std::uint64_t n) {
    auto l = std::make_unique<AnsweredLog>();
    BOOST_REQUIRE_EQUAL(l->open(dir), "");
    for (std::uint64_t i = 1; i <= n; ++i) BOOST_REQUIRE(!l->record(key(i), sock(i)));
    return l;
}

// A fresh instance on the same directory, as after a crash (the old one is gone first: its lock goes with it).
std::unique_ptr<AnsweredLog> reopen(std::unique_ptr<AnsweredLog>& old, const TempDir& d) {
    old.reset();
    auto l = std::make_unique<AnsweredLog>();
    BOOST_REQUIRE_EQUAL(l->open(d.path), "");
    return l;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(answered_log)

BOOST_AUTO_TEST_CASE(only_the_newest_unconfirmed_record_is_uncertain) {
    TempDir d;
    auto l = fresh(d.path / "cache", 3);
    l.reset();
    auto m = std::make_unique<AnsweredLog>();
    BOOST_REQUIRE_EQUAL(m->open(d.path / "cache"), "");
    BOOST_TEST(m->inherited_count() == 3u);
    BOOST_REQUIRE(m->find(key(1)));
    BOOST_TEST(m->find(key(1))->inherited);
    BOOST_TEST(!m->find(key(1))->uncertain);
    BOOST_TEST(!m->find(key(2))->uncertain);
    BOOST_REQUIRE(m->find(key(3)));
    BOOST_TEST(m->find(key(3))->uncertain);
    BOOST_TEST(m->find(key(3))->sock.ino == 5003u);
    BOOST_TEST(!m->find(key(4)));
    const auto st = std::filesystem::status(d.path / "cache" / "answered");
    BOOST_TEST(((st.permissions() & std::filesystem::perms::all) ==
                (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write)));
}

BOOST_AUTO_TEST_CASE(a_confirmed_burst_is_certain_and_the_mark_of_uncertainty_outlives_later_confirmations) {
    TempDir d;
    auto l = fresh(d.path, 2);
    l->confirm();
    l = reopen(l, d);
    BOOST_TEST(!l->find(key(1))->uncertain);
    BOOST_TEST(!l->find(key(2))->uncertain);

    BOOST_TEST(!l->record(key(3), sock(3)));  // killed after this record: uncertain
    l = reopen(l, d);
    BOOST_TEST(l->find(key(3))->uncertain);
    // This instance answers others and confirms them: that must not vouch for key 3.
    BOOST_TEST(!l->record(key(4), sock(4)));
    l->confirm();
    l = reopen(l, d);
    BOOST_TEST(l->find(key(3))->uncertain);
    BOOST_TEST(!l->find(key(4))->uncertain);
    // Settled (its reply was found waiting): certain from then on.
    l->settle(key(3));
    l = reopen(l, d);
    BOOST_TEST(!l->find(key(3))->uncertain);
}

BOOST_AUTO_TEST_CASE(an_erased_record_claims_nothing_and_makes_no_older_one_uncertain) {
    TempDir d;
    auto l = fresh(d.path, 2);
    l->erase(key(2));  // its send found a full queue
    l = reopen(l, d);
    BOOST_TEST(!l->find(key(2)));
    BOOST_REQUIRE(l->find(key(1)));
    BOOST_TEST(!l->find(key(1))->uncertain);
}

BOOST_AUTO_TEST_CASE(slots_are_reused_and_gone_questions_pruned) {
    TempDir d;
    auto l = fresh(d.path, 10);
    const auto file = d.path / "answered";
    BOOST_TEST(std::filesystem::file_size(file) == 11u * AnsweredLog::kRecordSize);
    for (std::uint64_t i = 1; i <= 5; ++i) l->release(key(i));
    for (std::uint64_t i = 11; i <= 15; ++i) BOOST_TEST(!l->record(key(i), sock(i)));
    BOOST_TEST(std::filesystem::file_size(file) == 11u * AnsweredLog::kRecordSize);
    BOOST_TEST(l->size() == 10u);
    // After a scan that finds only ask.q12 (by name and inode), only its record is kept.
    l->keep_only(42, {{"ask.q12", 1012}, {"ask.q99", 1099}, {"ask.q13", 1}});
    BOOST_TEST(l->size() == 1u);
    BOOST_TEST(l->find(key(12)));
    l = reopen(l, d);
    BOOST_TEST(l->find(key(12)));  // the others are stale on disk until reused, and pruned again
    l->keep_only(42, {{"ask.q12", 1012}});
    BOOST_TEST(l->size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_torn_or_foreign_slot_is_not_a_record) {
    TempDir d;
    auto l = fresh(d.path, 2);
    l->confirm();
    l.reset();
    const auto file = (d.path / "answered").string();
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    BOOST_REQUIRE(fd >= 0);
    const char garbage[] = "not a record";
    BOOST_REQUIRE(::pwrite(fd, garbage, sizeof garbage, AnsweredLog::kRecordSize * 2 + 20) ==
                  static_cast<ssize_t>(sizeof garbage));
    ::close(fd);
    auto m = std::make_unique<AnsweredLog>();
    BOOST_REQUIRE_EQUAL(m->open(d.path), "");
    BOOST_TEST(m->find(key(1)));
    BOOST_TEST(!m->find(key(2)));
}

BOOST_AUTO_TEST_CASE(one_instance_at_a_time_and_only_a_private_file) {
    TempDir d;
    AnsweredLog a, b;
    BOOST_REQUIRE_EQUAL(a.open(d.path), "");
    const auto w = b.open(d.path);
    BOOST_TEST(w.find("in use by another crypt-agent instance") != std::string::npos);
    BOOST_TEST(!b.usable());
    // Without its file an instance still remembers what it answered.
    BOOST_TEST(!b.record(key(1), sock(1)));
    BOOST_TEST(b.find(key(1)));

    TempDir e;
    const auto file = e.path / "answered";
    {
        const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ::close(fd);
    }
    ::chmod(file.c_str(), 0644);
    AnsweredLog c;
    BOOST_TEST(c.open(e.path).find("not a regular 0600 file") != std::string::npos);
    std::filesystem::remove(file);
    std::filesystem::create_symlink("/etc/passwd", file);
    AnsweredLog s;
    BOOST_TEST(!s.open(e.path).empty());
    BOOST_TEST(!s.usable());
}

BOOST_AUTO_TEST_CASE(socket_queue_reports_a_waiting_datagram) {
    TempDir d;
    const auto path = (d.path / "sck").string();
    const int rx = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    BOOST_REQUIRE(rx >= 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    BOOST_REQUIRE(::bind(rx, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0);
    struct stat st {};
    BOOST_REQUIRE(::stat(path.c_str(), &st) == 0);
    const SocketIdentity id{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    auto q = ca::agent::socket_queue(id);
    if (!q) {
        BOOST_TEST_MESSAGE(
            "the kernel has no unix_diag here; socket_queue cannot tell (the agent then waits its grace second)");
        ::close(rx);
        return;
    }
    BOOST_TEST(*q == 0u);
    const int tx = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(::sendto(tx, "+reply", 6, 0, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 6);
    q = ca::agent::socket_queue(id);
    BOOST_REQUIRE(q);
    BOOST_TEST(*q == 6u);
    char buf[16];
    BOOST_REQUIRE(::recv(rx, buf, sizeof buf, 0) == 6);
    q = ca::agent::socket_queue(id);
    BOOST_REQUIRE(q);
    BOOST_TEST(*q == 0u);
    BOOST_TEST(!ca::agent::socket_queue(SocketIdentity{id.dev, id.ino + 1000000}));  // no such socket
    ::close(tx);
    ::close(rx);
}

// Every slot taken by a question still present: each further record gives up the oldest
// current one, in the order written, whatever was released, erased or re-recorded before.
BOOST_AUTO_TEST_CASE(evicts_the_oldest_current_record) {
    TempDir d;
    constexpr std::uint64_t n = AnsweredLog::kMaxSlots;
    auto l = fresh(d.path, n);
    BOOST_CHECK(!l->evicted());
    l->release(key(1));                          // its slot is free: the next record takes it
    l->erase(key(2));                            // likewise
    BOOST_REQUIRE(!l->record(key(3), sock(3)));  // re-recorded: now the newest, not the oldest
    BOOST_REQUIRE(!l->record(key(n + 1), sock(n + 1)));
    BOOST_REQUIRE(!l->record(key(n + 2), sock(n + 2)));
    BOOST_CHECK(!l->evicted());
    BOOST_REQUIRE(!l->record(key(n + 3), sock(n + 3)));  // full: question 4 is the oldest
    BOOST_CHECK(l->evicted());
    BOOST_CHECK(l->find(key(4)) == nullptr);
    BOOST_CHECK(l->find(key(3)) != nullptr);
    BOOST_CHECK(l->find(key(5)) != nullptr);
    BOOST_REQUIRE(!l->record(key(n + 4), sock(n + 4)));
    BOOST_CHECK(l->find(key(5)) == nullptr);
    BOOST_CHECK(l->find(key(6)) != nullptr);
    BOOST_CHECK(l->find(key(n + 4)) != nullptr);
    BOOST_CHECK_EQUAL(l->size(), static_cast<std::size_t>(n));
}

BOOST_AUTO_TEST_SUITE_END()
