// SPDX-License-Identifier: MIT
// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.  A no-op
// when not started by systemd.  Failures are ignored: notification is advisory.
#pragma once
#include <string_view>

namespace ca::agent {
void sd_notify(std::string_view state) noexcept;
}
