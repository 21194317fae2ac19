// SPDX-License-Identifier: MIT

#include "agent/sources/pin_asker.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "smartcard/profile.hpp"

namespace ca::agent {
namespace {

namespace sc = ca::smartcard;
using boost::asio::local::datagram_protocol;

// systemd's reply buffer is 2049 bytes (a '+' and up to 2048 of password);
// a bit more lets us notice and refuse an oversized reply instead of truncating it.
constexpr std::size_t kReplyMax = 4096;

std::uint64_t monotonic_usec() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

std::string random_suffix() {
    unsigned char b[8];
    if (getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
        // Only uniqueness matters here, not secrecy.
        const auto t = monotonic_usec() ^ static_cast<std::uint64_t>(getpid());
        std::memcpy(b, &t, sizeof b);
    }
    return sc::hex(b, false);
}

// Ask-file values are single lines; a reader name with a newline must not add keys.
std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    return s;
}

sc::Error sys_error(const std::string& what) {
    return sc::make_error(sc::Errc::internal, what + ": " + std::strerror(errno));
}

}  // namespace

// One question the agent asks itself (a card's PIN) through ask-password; proto::Question is
// what an ask file says, TrackedAsk (answer/questions) a question the agent may answer.
struct PinAsker::OwnAsk {
    explicit OwnAsk(boost::asio::io_context& io) : socket(io), timer(io) {}
    datagram_protocol::socket socket;
    boost::asio::steady_timer timer;
    std::filesystem::path ask_path;
    std::filesystem::path socket_path;
    Done done;
    bool finished = false;
};

std::string pin_question_id(const std::string& reader) { return one_line("crypt-agent:pin:" + reader); }

std::string pin_question_message(const smartcard::PinPrompt::Request& req) {
    std::string m;
    if (req.after_wrong_pin) m += "Wrong PIN. ";
    if (req.last_try) m += "LAST TRY: a wrong PIN blocks the card. ";
    if (!req.token_label.empty()) {
        m += "Please enter the PIN of token \"" + req.token_label + "\"";
        if (req.count_low && req.tries_left < 0) m += " (PIN count low)";
    } else {
        m += "Please enter the PIN of the smartcard in reader \"" + req.reader + "\"";
    }
    if (req.tries_left >= 0)
        m += " (" + std::to_string(req.tries_left) + (req.tries_left == 1 ? " try left)" : " tries left)");
    m += ":";
    return one_line(m);
}

PinAsker::PinAsker(boost::asio::io_context& io, PinAskerOptions options) : io_(io), options_(std::move(options)) {}

PinAsker::~PinAsker() { cancel(); }

void PinAsker::ask(const Request& req, Done done) {
    ask_text(pin_question_id(req.reader), pin_question_message(req), "media-flash", std::move(done));
}

void PinAsker::ask_text(const std::string& id, const std::string& message, const std::string& icon, Done done) {
    if (current_) {
        auto old = current_;
        finish(old, sc::make_error(sc::Errc::cancelled, "a newer PIN question replaced this one"));
    }
    auto q = std::make_shared<OwnAsk>(io_);
    q->done = std::move(done);
    const std::string suffix = random_suffix();
    q->socket_path = options_.ask_dir / ("sck." + suffix);
    q->ask_path = options_.ask_dir / ("ask." + suffix);

    auto fail_now = [this, &q](const sc::Error& e) {
        current_ = q;
        boost::asio::post(io_, [this, q, e] { finish(q, e); });
    };

    // The reply socket first: the ask file must never name a socket that is not there.
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return fail_now(sys_error("creating the PIN reply socket"));
    boost::system::error_code ec;
    q->socket.assign(datagram_protocol(), fd, ec);
    if (ec) {
        ::close(fd);
        return fail_now(sc::make_error(sc::Errc::internal, "socket: " + ec.message()));
    }
    // systemd checks SCM_CREDENTIALS of every reply: only root may answer.
    const int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0)
        return fail_now(sys_error("enabling SO_PASSCRED on the PIN reply socket"));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string sp = q->socket_path.string();
    if (sp.size() >= sizeof addr.sun_path)
        return fail_now(sc::make_error(sc::Errc::internal, "ask directory path too long for a socket"));
    std::memcpy(addr.sun_path, sp.c_str(), sp.size() + 1);
    {
        const mode_t old = umask(0077);  // 0600, as systemd's askers make it
        const int rc = bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
        umask(old);
        if (rc < 0) return fail_now(sys_error("binding " + sp));
    }

    const std::uint64_t not_after = monotonic_usec() + static_cast<std::uint64_t>(options_.timeout.count()) * 1000000u;
    const std::string body = "[Ask]\nPID=" + std::to_string(getpid()) + "\nSocket=" + sp +
                             "\nAcceptCached=0\nEcho=0\nNotAfter=" + std::to_string(not_after) +
                             "\nMessage=" + one_line(message) + "\nIcon=" + one_line(icon) + "\nId=" + one_line(id) +
                             "\n";
    // Write a temporary name and rename: agents react to IN_MOVED_TO and must
    // never see a half-written question.
    std::string tmp = (options_.ask_dir / "tmp.XXXXXX").string();
    const int afd = mkostemp(tmp.data(), O_CLOEXEC);
    if (afd < 0) {
        ::unlink(sp.c_str());
        return fail_now(sys_error("creating a PIN question in " + options_.ask_dir.string()));
    }
    const bool written = fchmod(afd, 0644) == 0 &&
                         ::write(afd, body.data(), body.size()) == static_cast<ssize_t>(body.size());
    ::close(afd);
    if (!written || ::rename(tmp.c_str(), q->ask_path.c_str()) < 0) {
        ::unlink(tmp.c_str());
        ::unlink(sp.c_str());
        return fail_now(sys_error("writing the PIN question " + q->ask_path.string()));
    }

    current_ = q;
    q->timer.expires_after(options_.timeout);
    q->timer.async_wait([this, q](boost::system::error_code tec) {
        if (!tec) finish(q, sc::make_error(sc::Errc::timeout, "nobody entered the PIN in time"));
    });
    wait_reply(q);
}

void PinAsker::wait_reply(const std::shared_ptr<OwnAsk>& q) {
    q->socket.async_wait(datagram_protocol::socket::wait_read, [this, q](boost::system::error_code ec) {
        if (!ec && !q->finished) on_readable(q);
    });
}

void PinAsker::on_readable(const std::shared_ptr<OwnAsk>& q) {
    proto::Secret buf(kReplyMax);
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(ucred))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = recvmsg(q->socket.native_handle(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return wait_reply(q);
        return finish(q, sys_error("reading the PIN reply"));
    }
    const ucred* cred = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(ucred)))
            cred = reinterpret_cast<const ucred*>(CMSG_DATA(c));
    // Like systemd's askers: a reply without credentials or from another user is ignored.
    // A reply from this very process is ignored too: the agent answering its own
    // PIN question with a cached passphrase (a too-wide `match`) would burn a try.
    if (!cred || cred->uid != options_.accept_uid || cred->pid == getpid() || (msg.msg_flags & MSG_TRUNC) ||
        static_cast<std::size_t>(n) > buf.size() || n < 1)
        return wait_reply(q);
    const unsigned char kind = buf.data()[0];
    if (kind == '-') return finish(q, sc::make_error(sc::Errc::cancelled, "the PIN question was cancelled"));
    if (kind != '+') return wait_reply(q);
    // "+pw1\0pw2...": a PIN is the first candidate.
    std::size_t len = 0;
    while (1 + len < static_cast<std::size_t>(n) && buf.data()[1 + len] != 0) ++len;
    proto::Secret pin = proto::Secret::copy_of(std::span<const unsigned char>(buf.data() + 1, len));
    if (pin.empty()) return finish(q, sc::make_error(sc::Errc::cancelled, "an empty PIN was entered"));
    finish(q, std::move(pin));
}

void PinAsker::finish(const std::shared_ptr<OwnAsk>& q, smartcard::Expected<proto::Secret> result) {
    if (q->finished) return;
    q->finished = true;
    // Only the asker removes its files (the protocol's rule); the socket path goes too.
    std::error_code ec;
    std::filesystem::remove(q->ask_path, ec);
    std::filesystem::remove(q->socket_path, ec);
    boost::system::error_code bec;
    q->socket.close(bec);
    q->timer.cancel();
    if (current_ == q) current_.reset();
    if (q->done) {
        auto done = std::move(q->done);
        q->done = nullptr;
        done(std::move(result));
    }
}

void PinAsker::cancel() noexcept {
    if (!current_) return;
    auto q = current_;
    q->done = nullptr;
    finish(q, sc::make_error(sc::Errc::cancelled, "cancelled"));
}

std::function<std::unique_ptr<smartcard::PinPrompt>(boost::asio::io_context&)> pin_asker_factory(
    const PinAskerOptions& options) {
    return [options](boost::asio::io_context& io) -> std::unique_ptr<smartcard::PinPrompt> {
        return std::make_unique<PinAsker>(io, options);
    };
}

}  // namespace ca::agent
