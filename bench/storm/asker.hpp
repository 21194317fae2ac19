// SPDX-License-Identifier: MIT
// One question asked exactly as systemd 252's ask_password_agent() asks it
// (src/shared/ask-password-api.c; the syscall order below was checked with
// strace against Debian 12's systemd-ask-password):
//   umask 077; open tmp.XXXXXX O_CREAT|O_EXCL 0600; fchmod 0644
//   socket(AF_UNIX, SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC)
//   umask 0177; bind sck.<16 hex>; SO_PASSCRED
//   one write() of the [Ask] section; rename tmp.X -> ask.X
//   ... wait for a reply ...
//   unlink socket; unlink tmp (ENOENT); unlink ask; close file; close socket
// Two differences, both on the asker's side only: no signalfd per question
// (systemd makes one; it never touches the agent), and SO_TIMESTAMPNS on the
// socket so the kernel stamps each reply on arrival, which keeps the
// harness's own busy time out of the measured latency.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace storm {

// What systemd would make of one datagram (it ignores the invalid kinds and
// keeps waiting; it stops at the first valid reply or at a cancel).
enum class ReplyKind { right, wrong, cancel, no_credentials, not_root, invalid };

struct Reply {
    ReplyKind kind;
    std::int64_t received_ns;  // CLOCK_MONOTONIC, from the kernel's stamp when present
};

struct AskOptions {
    std::string dir;  // the private ask directory
    std::string message_prefix = "Please enter passphrase for disk bench-";
    bool accept_cached = true;              // systemd-cryptsetup's first ask
    std::uint64_t timeout_us = 90'000'000;  // NotAfter = now + this (systemd-ask-password's 90 s)
};

class Question {
public:
    Question() = default;
    Question(Question&& o) noexcept;
    Question& operator=(Question&& o) noexcept;
    Question(const Question&) = delete;
    Question& operator=(const Question&) = delete;
    ~Question();

    // Creates tmp file and socket and writes the [Ask] section.  Returns an
    // errno value (0 on success).
    int prepare(const AskOptions& opt, unsigned index);
    // Renames tmp.X to ask.X: from this moment agents may see the question.
    int publish();
    // Reads every queued datagram; classifies each as systemd would.
    // `expected` is the password that counts as right.
    void receive(const std::string& expected, std::int64_t realtime_offset_ns, std::vector<Reply>& out) const;
    // systemd's clean-up order: unlink socket, unlink tmp, unlink ask, close.
    void finish();

    [[nodiscard]] int socket_fd() const noexcept { return sock_fd_; }
    [[nodiscard]] std::int64_t published_ns() const noexcept { return published_ns_; }
    [[nodiscard]] bool open() const noexcept { return file_fd_ >= 0; }

private:
    int file_fd_ = -1;
    int sock_fd_ = -1;
    std::string tmp_path_, ask_path_, sock_path_;
    std::int64_t published_ns_ = 0;
};

std::int64_t monotonic_ns();
// CLOCK_REALTIME minus CLOCK_MONOTONIC now, to convert the kernel's receive
// stamps (realtime) into the monotonic domain of the publish times.
std::int64_t realtime_offset_ns();

// systemd's strv_parse_nulstr() on a reply body after '+': NUL-separated,
// a trailing NUL does not add an empty string, n == 0 means one empty password.
std::vector<std::string> parse_candidates(const char* body, std::size_t n);

}  // namespace storm
