// SPDX-License-Identifier: MIT
#include "proto/glob.hpp"

namespace ca::proto {

namespace {
// Matches one class at pattern[pi] == '[' against c; returns the index after ']' or npos if malformed.
std::size_t match_class(std::string_view p, std::size_t pi, char c, bool& matched) {
    std::size_t i = pi + 1;
    bool negate = false;
    if (i < p.size() && (p[i] == '!' || p[i] == '^')) {
        negate = true;
        ++i;
    }
    bool any = false;
    bool first = true;
    while (i < p.size() && (first || p[i] != ']')) {
        first = false;
        // Bytes compare unsigned, as fnmatch(3) does: [a-\xff] must include 'b'.
        const auto lo = static_cast<unsigned char>(p[i]);
        const auto uc = static_cast<unsigned char>(c);
        if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
            const auto hi = static_cast<unsigned char>(p[i + 2]);
            if (lo <= uc && uc <= hi) any = true;
            i += 3;
        } else {
            if (lo == uc) any = true;
            ++i;
        }
    }
    if (i >= p.size()) return std::string_view::npos;
    matched = any != negate;
    return i + 1;
}
}  // namespace

bool glob_match(std::string_view p, std::string_view t) noexcept {
    std::size_t pi = 0, ti = 0;
    std::size_t star_p = std::string_view::npos, star_t = 0;
    while (ti < t.size()) {
        if (pi < p.size()) {
            const char pc = p[pi];
            if (pc == '*') {
                star_p = pi++;
                star_t = ti;
                continue;
            }
            if (pc == '?') {
                ++pi;
                ++ti;
                continue;
            }
            if (pc == '[') {
                bool m = false;
                auto next = match_class(p, pi, t[ti], m);
                if (next == std::string_view::npos) {
                    if (t[ti] == '[') {
                        ++pi;
                        ++ti;
                        continue;
                    }  // literal '['
                } else if (m) {
                    pi = next;
                    ++ti;
                    continue;
                }
            } else {
                char lit = pc;
                std::size_t adv = 1;
                if (pc == '\\' && pi + 1 < p.size()) {
                    lit = p[pi + 1];
                    adv = 2;
                }
                if (lit == t[ti]) {
                    pi += adv;
                    ++ti;
                    continue;
                }
            }
        }
        if (star_p == std::string_view::npos) return false;
        pi = star_p + 1;
        ti = ++star_t;
    }
    while (pi < p.size() && p[pi] == '*') ++pi;
    return pi == p.size();
}

}  // namespace ca::proto
