// SPDX-License-Identifier: MIT
// The system-call side of one question: reading an ask file safely, checking
// where its Socket= leads, and sending the datagram.  No logging here: each
// function returns what went wrong, and the loop logs it once.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include <span>
#include <string>

#include "agent/fd.hpp"
#include "proto/ask_file.hpp"
#include "proto/result.hpp"

namespace ca::agent {

// Only names starting with "ask." are questions; systemd writes "tmp.*" (v252)
// or ".#ask.*" (newer) first and renames.
[[nodiscard]] inline bool is_question_name(std::string_view name) noexcept {
    return name.size() > 4 && name.substr(0, 4) == "ask.";
}

struct AskFile {
    proto::Question q;
    ino_t ino = 0;
    timespec ctime{};  // with the name and inode, which question this is (AnsweredLog)
};

struct AskFileError {
    enum Kind { vanished, not_regular, bad_owner, world_writable, too_large, io, no_fds, parse } kind;
    std::string reason;
};

// Opens `name` under `dirfd` without following symlinks and without blocking on a
// FIFO, and accepts only a regular file owned by `owner`, not group/world
// writable, within the size cap.
[[nodiscard]] proto::Expected<AskFile, AskFileError> read_ask_file(int dirfd, const char* name, uid_t owner);

// Where a reply goes, once Socket= has been checked: the address to give sendto(2).
// Usually the socket's own path (`<ask dir>/<name>`, as systemd's agents send); a Socket=
// that reaches the ask directory by another spelling ("//", "..", a symlinked parent) is
// pinned instead: an O_PATH descriptor, addressed as /proc/self/fd/N.
struct SendTarget {
    Fd pinned;
    sockaddr_un addr{};
    socklen_t addr_len = 0;
};

// Resolves Socket= and returns where to send if, and only if, it is a socket (not a
// symlink) whose parent directory is the ask directory itself (compared by device and
// inode after the kernel resolves the path) and it is owned by `owner`.
// `open_dir_fd`, when >= 0, is the ask directory, opened and checked at `open_dir_path`: a
// Socket= whose directory part is exactly that path is checked with one fstatat under it
// and sent to by its path.  Between that check and the send only a writer of the ask
// directory could replace the socket, and the watcher answers only in a directory that
// is owned by the agent's own uid and writable by nobody else (Watcher::enter): such a
// writer could send there itself, so pinning the inode would protect nothing, and its
// open, the /proc look-up and its close were a third of the agent's work per question.
// `socket_st`, when given, receives the socket's stat (its device and inode name the
// question's socket).
[[nodiscard]] proto::Expected<SendTarget, std::string> resolve_socket(const struct stat& ask_dir,
                                                                      const std::string& socket_path, uid_t owner,
                                                                      int open_dir_fd = -1,
                                                                      const std::string& open_dir_path = {},
                                                                      struct stat* socket_st = nullptr);

enum class SendStatus { sent, gone, again, refused };
// Sends `datagram` through the unbound SOCK_DGRAM `sender` to `target`.  `err` gets
// errno on failure.
[[nodiscard]] SendStatus send_datagram(int sender, const SendTarget& target, std::span<const unsigned char> datagram,
                                       int& err);

// A non-blocking, close-on-exec, unbound datagram socket for sending replies.
[[nodiscard]] proto::Expected<Fd, int> make_sender();

// Asks for a send buffer of `bytes` on `sender`: SO_SNDBUFFORCE (root; above
// net.core.wmem_max), else SO_SNDBUF (capped by wmem_max).  Returns 0, or errno of the
// SO_SNDBUF attempt when both fail.  Why: with the default 208 KiB, about 200 replies
// not yet read by their askers fill it and every later send gets EAGAIN (bench/README.md).
[[nodiscard]] int widen_send_buffer(int sender, int bytes) noexcept;

// True if a process with this PID exists (EPERM counts as alive).
[[nodiscard]] bool pid_alive(std::int64_t pid) noexcept;

}  // namespace ca::agent
