// SPDX-License-Identifier: MIT
#include "bench/storm/asker.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

namespace storm {

std::int64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t realtime_offset_ns() {
    timespec m1{}, r{}, m2{};
    clock_gettime(CLOCK_MONOTONIC, &m1);
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &m2);
    const auto ns = [](const timespec& t) { return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; };
    return ns(r) - (ns(m1) + ns(m2)) / 2;
}

namespace {

std::uint64_t random_u64() {
    std::uint64_t v = 0;
    while (getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
    }
    return v;
}

// mkostemp's six random characters; glibc's alphabet.
std::string random_suffix() {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::uint64_t r = random_u64();
    std::string s(6, 'A');
    for (char& c : s) {
        c = alphabet[r % 62];
        r /= 62;
    }
    return s;
}

// The tmp file as mkostemp_safe() makes it: umask 077 around the create.
int create_tmp(const std::string& dir, std::string& tmp_path, std::string& ask_path) {
    for (int attempt = 0; attempt < 100; ++attempt) {
        const std::string suffix = random_suffix();
        tmp_path = dir + "/tmp." + suffix;
        const mode_t old = umask(077);
        const int fd = open(tmp_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        umask(old);
        if (fd >= 0) {
            ask_path = dir + "/ask." + suffix;
            return fd;
        }
        if (errno != EEXIST) return -1;
    }
    errno = EEXIST;
    return -1;
}

int create_socket(const std::string& dir, std::string& sock_path) {
    const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    char name[64];
    std::snprintf(name, sizeof name, "/sck.%lx", static_cast<unsigned long>(random_u64()));
    sock_path = dir + name;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (sock_path.size() >= sizeof sa.sun_path) {
        close(fd);
        errno = ENAMETOOLONG;
        return -1;
    }
    std::memcpy(sa.sun_path, sock_path.c_str(), sock_path.size());
    const mode_t old = umask(0177);  // the socket is 0600: only root can answer
    const int r = bind(fd, reinterpret_cast<sockaddr*>(&sa),
                       static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + sock_path.size()));
    umask(old);
    const int one = 1;
    if (r < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) {
        const int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

std::string ask_section(const AskOptions& opt, const std::string& sock_path, unsigned index) {
    const std::uint64_t not_after = static_cast<std::uint64_t>(monotonic_ns() / 1000) + opt.timeout_us;
    char buf[1024];
    const int n = std::snprintf(buf, sizeof buf,
                                "[Ask]\nPID=%d\nSocket=%s\nAcceptCached=%d\nEcho=0\nNotAfter=%llu\nSilent=0\n"
                                "Message=%s%u:\nIcon=drive-harddisk\nId=cryptsetup:/dev/bench-%u\n",
                                static_cast<int>(getpid()), sock_path.c_str(), opt.accept_cached ? 1 : 0,
                                static_cast<unsigned long long>(not_after), opt.message_prefix.c_str(), index, index);
    return std::string(buf, static_cast<std::size_t>(std::max(n, 0)));
}

}  // namespace

Question::Question(Question&& o) noexcept { *this = std::move(o); }

Question& Question::operator=(Question&& o) noexcept {
    if (this != &o) {
        finish();
        file_fd_ = std::exchange(o.file_fd_, -1);
        sock_fd_ = std::exchange(o.sock_fd_, -1);
        tmp_path_ = std::move(o.tmp_path_);
        ask_path_ = std::move(o.ask_path_);
        sock_path_ = std::move(o.sock_path_);
        published_ns_ = o.published_ns_;
    }
    return *this;
}

Question::~Question() { finish(); }

int Question::prepare(const AskOptions& opt, unsigned index) {
    file_fd_ = create_tmp(opt.dir, tmp_path_, ask_path_);
    if (file_fd_ < 0) return errno;
    (void)fchmod(file_fd_, 0644);
    sock_fd_ = create_socket(opt.dir, sock_path_);
    if (sock_fd_ < 0) {
        const int e = errno;
        finish();
        return e;
    }
    const std::string text = ask_section(opt, sock_path_, index);
    // systemd's fprintf + fflush: one write of the whole section.
    if (write(file_fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
        const int e = errno ? errno : EIO;
        finish();
        return e;
    }
    return 0;
}

int Question::publish() {
    // Stamped before the rename: an agent cannot see the question earlier, so
    // the latency is never under-stated.
    published_ns_ = monotonic_ns();
    return rename(tmp_path_.c_str(), ask_path_.c_str()) < 0 ? errno : 0;
}

std::vector<std::string> parse_candidates(const char* body, std::size_t n) {
    std::vector<std::string> out;
    if (n == 0) {
        out.emplace_back();  // "+" alone is the empty password
        return out;
    }
    std::size_t start = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (body[i] == '\0') {
            out.emplace_back(body + start, i - start);
            start = i + 1;
        }
    }
    if (start < n) out.emplace_back(body + start, n - start);
    return out;
}

namespace {

ReplyKind classify(const char* buf, ssize_t n, const msghdr& msg, const std::string& expected) {
    const ucred* cred = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(ucred)))
            cred = reinterpret_cast<const ucred*>(CMSG_DATA(c));
    }
    if (!cred) return ReplyKind::no_credentials;
    if (cred->uid != 0) return ReplyKind::not_root;
    if (n <= 0) return ReplyKind::invalid;
    if (buf[0] == '-') return ReplyKind::cancel;
    if (buf[0] != '+') return ReplyKind::invalid;
    const auto candidates = parse_candidates(buf + 1, static_cast<std::size_t>(n - 1));
    if (candidates.empty()) return ReplyKind::invalid;
    return std::find(candidates.begin(), candidates.end(), expected) != candidates.end() ? ReplyKind::right
                                                                                         : ReplyKind::wrong;
}

std::int64_t stamp_of(const msghdr& msg, std::int64_t realtime_offset_ns) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts{};
            std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
            const std::int64_t real = std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
            if (real != 0) return real - realtime_offset_ns;
        }
    }
    return monotonic_ns();
}

}  // namespace

void Question::receive(const std::string& expected, std::int64_t realtime_offset_ns, std::vector<Reply>& out) const {
    for (;;) {
        char buf[2049];  // systemd: LINE_MAX + 1; longer datagrams are truncated
        iovec iov{buf, sizeof buf};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(timespec))];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = recvmsg(sock_fd_, &msg, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;  // EAGAIN: queue drained
        }
        out.push_back({classify(buf, n, msg, expected), stamp_of(msg, realtime_offset_ns)});
        explicit_bzero(buf, sizeof buf);
    }
}

void Question::finish() {
    if (!sock_path_.empty()) (void)unlink(sock_path_.c_str());
    if (!tmp_path_.empty()) (void)unlink(tmp_path_.c_str());  // ENOENT once renamed, as in systemd
    if (!ask_path_.empty()) (void)unlink(ask_path_.c_str());
    if (file_fd_ >= 0) close(file_fd_);
    if (sock_fd_ >= 0) close(sock_fd_);
    file_fd_ = sock_fd_ = -1;
    sock_path_.clear();
    tmp_path_.clear();
    ask_path_.clear();
}

}  // namespace storm
