// SPDX-License-Identifier: MIT
// libFuzzer target: ca::proto::parse_ask_file on arbitrary bytes.
// Beyond "no crash, no sanitizer report": what the parser accepts must keep the
// promises the agent relies on before it ever touches the socket.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/ask_file.hpp"

namespace {
bool printable(std::string_view s) {
    for (unsigned char c : s)
        if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) return false;
    return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto q = ca::proto::parse_ask_file(text);
    if (!q) return 0;
    if (q->pid <= 0 || q->pid > INT32_MAX) std::abort();
    if (q->socket.empty() || q->socket.front() != '/' || q->socket.size() > 107) std::abort();
    if (!printable(q->socket) || (q->id && !printable(*q->id))) std::abort();
    return 0;
}
