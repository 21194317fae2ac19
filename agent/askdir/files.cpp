// SPDX-License-Identifier: MIT
#include "agent/askdir/files.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

namespace ca::agent {

proto::Expected<AskFile, AskFileError> read_ask_file(int dirfd, const char* name, uid_t owner) {
    // O_NONBLOCK: opening a FIFO named ask.* must not block the loop.
    Fd fd(::openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd) {
        if (errno == ENOENT)
            return proto::unexpected(AskFileError{AskFileError::vanished, "gone before it could be read"});
        if (errno == ELOOP) return proto::unexpected(AskFileError{AskFileError::not_regular, "is a symbolic link"});
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
            return proto::unexpected(
                AskFileError{AskFileError::no_fds, std::string("cannot open: ") + std::strerror(errno)});
        return proto::unexpected(AskFileError{AskFileError::io, std::string("cannot open: ") + std::strerror(errno)});
    }
    struct stat st {};
    if (fstat(fd.get(), &st) < 0)
        return proto::unexpected(AskFileError{AskFileError::io, std::string("cannot stat: ") + std::strerror(errno)});
    if (!S_ISREG(st.st_mode))
        return proto::unexpected(AskFileError{AskFileError::not_regular, "is not a regular file"});
    if (st.st_uid != owner)
        return proto::unexpected(AskFileError{AskFileError::bad_owner, "is owned by uid " + std::to_string(st.st_uid) +
                                                                           ", not " + std::to_string(owner)});
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return proto::unexpected(AskFileError{AskFileError::world_writable, "is writable by group or others"});
    if (static_cast<std::size_t>(st.st_size) > proto::kAskFileMaxSize)
        return proto::unexpected(
            AskFileError{AskFileError::too_large, "is " + std::to_string(st.st_size) + " bytes, over the " +
                                                      std::to_string(proto::kAskFileMaxSize) + "-byte limit"});
    // Read one byte more than the cap so a file that grew after fstat is still caught.
    char buf[proto::kAskFileMaxSize + 1];
    std::size_t got = 0;
    for (;;) {
        const std::size_t want = sizeof buf - got;
        ssize_t n = ::read(fd.get(), buf + got, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return proto::unexpected(
                AskFileError{AskFileError::io, std::string("cannot read: ") + std::strerror(errno)});
        got += static_cast<std::size_t>(n);
        // A short read of a regular file is its end: one read() for a whole ask file.
        if (n == 0 || static_cast<std::size_t>(n) < want || got == sizeof buf) break;
    }
    auto q = proto::parse_ask_file(std::string_view(buf, got));
    if (!q) {
        const auto& e = q.error();
        std::string where = e.line ? "line " + std::to_string(e.line) + ": " : std::string();
        return proto::unexpected(AskFileError{AskFileError::parse, where + e.reason});
    }
    return AskFile{std::move(*q), st.st_ino, st.st_ctim};
}

namespace {

// What is wrong with the socket Socket= names, or nothing.
std::optional<std::string> socket_problem(const struct stat& sst, uid_t owner) {
    if (!S_ISSOCK(sst.st_mode))
        return std::string(S_ISLNK(sst.st_mode) ? "Socket= is a symbolic link" : "Socket= is not a socket");
    if (sst.st_uid != owner)
        return "Socket= is owned by uid " + std::to_string(sst.st_uid) + ", not " + std::to_string(owner);
    return std::nullopt;
}

bool set_path(SendTarget& t, std::string_view path) {
    if (path.size() >= sizeof t.addr.sun_path) return false;
    t.addr.sun_family = AF_UNIX;
    std::memcpy(t.addr.sun_path, path.data(), path.size());
    t.addr.sun_path[path.size()] = '\0';
    t.addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    return true;
}

}  // namespace

proto::Expected<SendTarget, std::string> resolve_socket(const struct stat& ask_dir, const std::string& path,
                                                        uid_t owner, int open_dir_fd, const std::string& open_dir_path,
                                                        struct stat* socket_st) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos || slash + 1 >= path.size())
        return proto::unexpected(std::string("Socket= has no file name"));
    const std::string base = path.substr(slash + 1);
    if (base == "." || base == "..") return proto::unexpected(std::string("Socket= names a directory"));
    const std::string parent = slash == 0 ? "/" : path.substr(0, slash);
    SendTarget t;
    struct stat sst {};
    if (open_dir_fd >= 0 && parent == open_dir_path && set_path(t, path)) {
        // The directory the watcher opened and checked, by that very path: one fstatat.
        if (fstatat(open_dir_fd, base.c_str(), &sst, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT) return proto::unexpected(std::string("Socket= does not exist (asker gone)"));
            return proto::unexpected(std::string("cannot stat Socket=: ") + std::strerror(errno));
        }
        if (auto bad = socket_problem(sst, owner)) return proto::unexpected(std::move(*bad));
        if (socket_st) *socket_st = sst;
        return t;
    }
    // The kernel resolves the parent ("//", "..", symlinks); we compare what it found.
    Fd dir(::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return proto::unexpected(std::string("Socket= directory cannot be opened: ") + std::strerror(errno));
    struct stat dst {};
    if (fstat(dir.get(), &dst) < 0)
        return proto::unexpected(std::string("cannot stat Socket= directory: ") + std::strerror(errno));
    if (dst.st_dev != ask_dir.st_dev || dst.st_ino != ask_dir.st_ino)
        return proto::unexpected(std::string("Socket= is outside the ask directory"));
    Fd sock(::openat(dir.get(), base.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!sock) {
        if (errno == ENOENT) return proto::unexpected(std::string("Socket= does not exist (asker gone)"));
        return proto::unexpected(std::string("Socket= cannot be opened: ") + std::strerror(errno));
    }
    if (fstat(sock.get(), &sst) < 0)
        return proto::unexpected(std::string("cannot stat Socket=: ") + std::strerror(errno));
    if (auto bad = socket_problem(sst, owner)) return proto::unexpected(std::move(*bad));
    if (socket_st) *socket_st = sst;
    // Addressed through the descriptor, so the inode checked is the one that receives.
    char proc[40];
    const int n = std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", sock.get());
    (void)set_path(t, std::string_view(proc, static_cast<std::size_t>(n)));
    t.pinned = std::move(sock);
    return t;
}

SendStatus send_datagram(int sender, const SendTarget& target, std::span<const unsigned char> datagram, int& err) {
    for (;;) {
        ssize_t n = ::sendto(sender, datagram.data(), datagram.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&target.addr), target.addr_len);
        if (n >= 0) return SendStatus::sent;
        err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) return SendStatus::again;
        if (err == ECONNREFUSED || err == ENOENT) return SendStatus::gone;
        return SendStatus::refused;  // EPROTOTYPE (a stream socket), EACCES, ...
    }
}

proto::Expected<Fd, int> make_sender() {
    Fd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s) return proto::unexpected(errno);
    return s;
}

int widen_send_buffer(int sender, int bytes) noexcept {
    if (::setsockopt(sender, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) == 0) return 0;
    if (::setsockopt(sender, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) == 0) return 0;
    return errno;
}

bool pid_alive(std::int64_t pid) noexcept {
    if (pid <= 0 || pid > INT32_MAX) return false;
    return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace ca::agent
