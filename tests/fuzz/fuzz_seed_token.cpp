// SPDX-License-Identifier: MIT
// libFuzzer target: the seed record codecs (proto/seed_token.hpp).
//  - decode_seed_token on the input, and decode(encode(r)) == r for what it accepts;
//  - the LUKS1 store file: the input's first line with a correct CRC-32 line
//    appended (so the JSON reader behind the checksum is reached), same round trip;
//  - decode_store_record on the raw input (the checksum path);
//  - luks2_keyslot_salt and from_hex/to_hex on the input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "proto/seed_token.hpp"

namespace ca_fuzz {
using namespace ca::proto;

void token_round_trip(std::string_view text) {
    auto r = decode_seed_token(text);
    if (!r) return;
    std::vector<int> bound;
    for (const auto& g : r->generations()) bound.push_back(g.keyslot);
    auto back = decode_seed_token(encode_seed_token(*r, bound));
    if (!back || !(*back == *r)) std::abort();
}

void store_round_trip(std::string_view text) {
    (void)decode_store_record(text);
    const std::string line = std::string(text.substr(0, text.find('\n'))) + "\n";
    char sum[16];
    std::snprintf(
        sum, sizeof sum, "crc32 %08x\n",
        static_cast<unsigned>(crc32(std::span(reinterpret_cast<const unsigned char*>(line.data()), line.size()))));
    auto r = decode_store_record(line + sum);
    if (!r) return;
    auto back = decode_store_record(encode_store_record(*r));
    if (!back || back->uuid != r->uuid || !(back->record == r->record)) std::abort();
}

void hex_round_trip(std::string_view text) {
    auto bytes = from_hex(text);
    if (!bytes) return;
    std::string lower(text);
    for (char& c : lower)
        if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (to_hex(*bytes) != lower) std::abort();
}
}  // namespace ca_fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    ca_fuzz::token_round_trip(text);
    ca_fuzz::store_round_trip(text);
    (void)ca::proto::luks2_keyslot_salt(text, 0);
    ca_fuzz::hex_round_trip(text);
    return 0;
}
