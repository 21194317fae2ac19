// SPDX-License-Identifier: MIT
// How Boost.Test prints our types in failure messages.
#pragma once
#include <boost/test/unit_test.hpp>
#include <optional>
#include <ostream>

#include "proto/ask_file.hpp"
#include "proto/cache_codec.hpp"
#include "proto/reply.hpp"

namespace ca::proto {
inline std::ostream& operator<<(std::ostream& os, AskError e) { return os << to_string(e); }
inline std::ostream& operator<<(std::ostream& os, ReplyError e) { return os << to_string(e); }
inline std::ostream& operator<<(std::ostream& os, CacheCodecError e) { return os << to_string(e); }
}  // namespace ca::proto

namespace std {
inline std::ostream& boost_test_print_type(std::ostream& os, const std::optional<bool>& b) {
    return os << (b ? (*b ? "true" : "false") : "nullopt");
}
}  // namespace std
