// SPDX-License-Identifier: MIT
// Writes seed inputs for the fuzz targets, produced by the real encoders, so the
// fuzzers start from well-formed payloads instead of having to discover the
// layouts byte by byte.  Usage: fuzz_make_corpus OUTPUT_DIR
// (writes OUTPUT_DIR/<target>/<name>; the committed tests/fuzz/corpus/ came from it).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "proto/cache_codec.hpp"
#include "proto/reply.hpp"
#include "proto/seed_token.hpp"

namespace fs = std::filesystem;
using namespace ca::proto;

namespace {
fs::path out_dir;

// A string literal with its embedded NULs (the size comes from the array).
template <std::size_t N>
std::string_view lit(const char (&s)[N]) {
    return {s, N - 1};
}

void write(const std::string& target, const std::string& name, std::span<const unsigned char> bytes) {
    fs::create_directories(out_dir / target);
    std::ofstream f(out_dir / target / name, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!f) throw std::runtime_error("cannot write " + (out_dir / target / name).string());
}
void write(const std::string& target, const std::string& name, std::string_view text) {
    write(target, name, std::span(reinterpret_cast<const unsigned char*>(text.data()), text.size()));
}

CachedCandidate candidate(std::string_view value, Origin origin, std::vector<std::string> patterns,
                          std::vector<std::string> sent, std::vector<std::string> rejected) {
    CachedCandidate c;
    c.value = Secret::copy_of(value);
    c.origin = origin;
    c.opened = !sent.empty() && rejected.empty();
    c.added_us = 12'345'678;
    c.patterns = std::move(patterns);
    for (const auto& id : sent) c.sent_to.push_back(id_hash(id));
    for (const auto& id : rejected) c.rejected_by.push_back(id_hash(id));
    return c;
}

void cache_payloads() {
    CachePayload empty{1'000'000, 901'000'000, {}, {}};
    write("cache_codec", "empty", encode_cache(empty)->bytes());

    CachePayload one{2'000'000, 902'000'000, {}, {}};
    one.candidates.push_back(candidate("correct horse", Origin::put, {"cryptsetup:*"}, {}, {}));
    write("cache_codec", "one-put", encode_cache(one)->bytes());

    CachePayload learnt{3'000'000, 903'000'000, {}, {}};
    learnt.candidates.push_back(candidate("typed once", Origin::harvested, {},
                                          {"cryptsetup:/dev/vda2", "cryptsetup:/dev/vdb"}, {"cryptsetup:/dev/vdb"}));
    learnt.candidates.push_back(
        candidate(std::string(64, 'a'), Origin::card, {"cryptsetup:/dev/vd?"}, {"cryptsetup:/dev/vda2"}, {}));
    write("cache_codec", "learnt", encode_cache(learnt)->bytes());

    CachePayload card{4'000'000, 904'000'000, {}, {}};
    card.candidates.push_back(candidate("card derived", Origin::card, {"cryptsetup:/dev/vda2"}, {}, {}));
    card.card_responses.push_back(
        {CardResponse::Kind::current, std::vector<unsigned char>(32, 0x11), Secret::copy_of(std::string(256, 'r'))});
    card.card_responses.push_back(
        {CardResponse::Kind::next, std::vector<unsigned char>(32, 0x22), Secret::copy_of(std::string(256, 'n'))});
    write("cache_codec", "card-responses", encode_cache(card)->bytes());
}

SeedGeneration generation(unsigned char fill, std::uint64_t gen, int slot, std::string salt) {
    return {std::vector<unsigned char>(32, fill), gen, slot, std::move(salt)};
}

void seed_records() {
    SeedRecord steady{"iso7816-internal-authenticate", generation(0x11, 1, 1, "c2FsdA=="), {}, {}};
    const int one[] = {1};
    write("seed_token", "steady", encode_seed_token(steady, one));

    SeedRecord intent = steady;
    intent.pending = generation(0x22, 2, 2, "");
    write("seed_token", "pending", encode_seed_token(intent, one));

    SeedRecord retiring{
        "iso7816-internal-authenticate", generation(0x22, 2, 2, "bmV3"), {}, generation(0x11, 1, 1, "c2FsdA==")};
    const int both[] = {1, 2};
    write("seed_token", "previous", encode_seed_token(retiring, both));

    write("seed_token", "store-steady", encode_store_record({"0b5e7a3c-6f3e-4a57-9d8b-2f5a1c0e9d11", steady}));
    write("seed_token", "store-retiring", encode_store_record({"0b5e7a3c-6f3e-4a57-9d8b-2f5a1c0e9d11", retiring}));
}

void replies() {
    // separator byte, then candidates
    write("reply", "two",
          lit("\x01"
              "first\x01"
              "second"));
    write("reply", "nul-sep", lit("\0pass\0word"));
    Secret a = Secret::copy_of("one"), b = Secret::copy_of("two");
    const Secret* ptrs[] = {&a, &b};
    write("reply", "datagram", encode_reply(ptrs)->bytes());
    write("reply", "long", "|" + std::string(2040, 'x') + "|" + std::string(20, 'y'));
}

void globs() {
    write("glob", "cryptsetup", lit("cryptsetup:*\0cryptsetup:/dev/vda2"));
    write("glob", "class", lit("cryptsetup:/dev/vd[a-c]?\0cryptsetup:/dev/vdb1"));
    write("glob", "stars", lit("*a*a*a*b\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    // The worst case of a one-star backtracking matcher: each of the ~510 restarts
    // compares ~510 bytes before the 'b' fails (quadratic, ~260,000 steps).
    write("glob", "quadratic", "*" + std::string(510, 'a') + "b" + std::string(1, '\0') + std::string(1020, 'a'));
}

void card() {
    write("card_response", "ok", lit("\x01\x02\x90\x00"));
    write("card_response", "tries", lit("\x63\xc2"));
    write("card_response", "aid", "aid=A0 00 00 03 97 42 54 46 59");
    write("card_response", "command", "command=00880600");
    write("card_response", "challenge-length", "challenge-length=32");
    write("card_response", "pin-reference", "pin-reference=none");
}
}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: fuzz_make_corpus OUTPUT_DIR\n";
        return 2;
    }
    out_dir = argv[1];
    cache_payloads();
    seed_records();
    replies();
    globs();
    card();
    return 0;
}
