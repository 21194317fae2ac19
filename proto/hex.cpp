// SPDX-License-Identifier: MIT
#include "proto/hex.hpp"

namespace ca::proto {
namespace {

constexpr const char* kLower = "0123456789abcdef";

int nibble(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string to_hex(std::span<const unsigned char> bytes, bool upper) {
    const char* digits = upper ? "0123456789ABCDEF" : kLower;
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0x0f]);
    }
    return out;
}

std::optional<std::vector<unsigned char>> from_hex(std::string_view text, bool separators) {
    std::vector<unsigned char> out;
    out.reserve(text.size() / 2);
    int high = -1;
    for (char c : text) {
        if (separators && (c == ' ' || c == ':') && high < 0) continue;
        const int n = nibble(static_cast<unsigned char>(c));
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

Secret to_hex_secret(std::span<const unsigned char> bytes) {
    Secret text(bytes.size() * 2);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        text.data()[2 * i] = static_cast<unsigned char>(kLower[bytes[i] >> 4]);
        text.data()[2 * i + 1] = static_cast<unsigned char>(kLower[bytes[i] & 0x0f]);
    }
    return text;
}

std::optional<Secret> secret_from_hex(std::span<const unsigned char> text) {
    if (text.size() % 2 != 0) return std::nullopt;
    Secret out(text.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
        const int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.data()[i] = static_cast<unsigned char>(hi << 4 | lo);
    }
    return out;
}

}  // namespace ca::proto
