// SPDX-License-Identifier: MIT
// How a question is named in the log.  Names and Ids come from files anyone with root's ask
// directory writes: escaped, so one question is one log record whatever bytes they hold.
#pragma once

#include <string>

#include "agent/log.hpp"

namespace ca::agent {

[[nodiscard]] inline std::string quoted_id(const std::string& id) {
    return id.empty() ? std::string("(no Id)") : escaped(id);
}

// "ask.XXXX (cryptsetup:/dev/vda2)"
[[nodiscard]] inline std::string describe(const std::string& name, const std::string& id) {
    return escaped(name) + " (" + quoted_id(id) + ")";
}

}  // namespace ca::agent
