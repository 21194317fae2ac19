// SPDX-License-Identifier: MIT
// Shell-style glob matching for question Ids ("cryptsetup:*"), as fnmatch(3)
// without flags: '*' matches any run (including '/'), '?' one byte, [...] a class.
// Pure, iterative (no recursion, no exponential backtracking on hostile Ids).
#pragma once
#include <string_view>

namespace ca::proto {
[[nodiscard]] bool glob_match(std::string_view pattern, std::string_view text) noexcept;
}
