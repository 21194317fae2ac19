#include "proto/hex.hpp"

namespace ca::proto {

std::string to_hex(std::span<const unsigned char> bytes, bool upper) {
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0x0f]);
    }
    return out;
}

std::optional<std::vector<unsigned char>> from_hex(std::string_view text, bool separators) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::vector<unsigned char> out;
    out.reserve(text.size() / 2);
    int high = -1;
    for (char c : text) {
        if (separators && (c == ' ' || c == ':') && high < 0) continue;
        const int n = nibble(c);
        if (n < 0) return std::nullopt;
        if (high < 0) {
            high = n;
        } else {
            out.push_back(static_cast<unsigned char>(high << 4 | n));
            high = -1;
        }
    }
    if (high >= 0) return std::nullopt;
    return out;
}

}  // namespace ca::proto
