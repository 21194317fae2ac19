// SPDX-License-Identifier: MIT
#include "agent/daemon/notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "agent/fd.hpp"

namespace ca::agent {

void sd_notify(std::string_view state) noexcept {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (path == nullptr || path[0] == 0) return;
    const std::size_t len = std::strlen(path);
    sockaddr_un sa{};
    if (len >= sizeof sa.sun_path) return;
    if (path[0] != '/' && path[0] != '@') return;
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path, len);
    if (path[0] == '@') sa.sun_path[0] = 0;  // abstract namespace
    Fd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s) return;
    const auto salen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
    (void)::sendto(s.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&sa), salen);
}

}  // namespace ca::agent
