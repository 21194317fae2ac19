// SPDX-License-Identifier: MIT
// Key derivation against the lab's published vector and the documented layout.
#define BOOST_TEST_MODULE smartcard_derive
#include <boost/test/unit_test.hpp>

#include <array>
#include <string>
#include <vector>

#include "smartcard/derive.hpp"

namespace sc = ca::smartcard;
using ca::proto::Secret;

namespace {

std::vector<unsigned char> unhex(std::string_view h) {
    std::vector<unsigned char> out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2)
        out.push_back(static_cast<unsigned char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    return out;
}

std::string hex(std::span<const unsigned char> b) {
    static constexpr char d[] = "0123456789ABCDEF";
    std::string s;
    for (unsigned char c : b) {
        s.push_back(d[c >> 4]);
        s.push_back(d[c & 15]);
    }
    return s;
}

std::span<const unsigned char> as_bytes(std::string_view s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

// LAB.md: fixture card key 000102..0F, seed = 32 x 0x11.
const std::string kResponse = "35D14E6D3E3A279CF01E343E34E7DED3B9227EA666F1D6B8D105C10405844F4D";
const std::string kOkm = "084D17C5EDEBD4566899E1FC263491FC6A79EA694720DE754997DD28A32A38D9";
const std::array<unsigned char, 32> kSeed = [] {
    std::array<unsigned char, 32> a{};
    a.fill(0x11);
    return a;
}();

}  // namespace

BOOST_AUTO_TEST_CASE(lab_vector_raw_hkdf) {
    const auto response = unhex(kResponse);
    const Secret okm = sc::hkdf_sha256(response, kSeed, as_bytes(sc::kDeriveLabel), 32);
    BOOST_TEST(hex(okm.bytes()) == kOkm);
}

// RFC 5869 test case 1, so the helper is HKDF and not merely "matches one vector".
BOOST_AUTO_TEST_CASE(rfc5869_case1) {
    const std::vector<unsigned char> ikm(22, 0x0b);
    const auto salt = unhex("000102030405060708090a0b0c");
    const auto info = unhex("f0f1f2f3f4f5f6f7f8f9");
    const Secret okm = sc::hkdf_sha256(ikm, salt, info, 42);
    BOOST_TEST(hex(okm.bytes()) ==
               "3CB25F25FAACD57A90434F64D0362F2A2D2D0A90CF1A5A4C5DB02D56ECC4C5BF34007208D5B887185865");
}

BOOST_AUTO_TEST_CASE(volume_key_is_hkdf_of_label_and_uuid_in_lower_hex) {
    const Secret response = Secret::copy_of(std::span<const unsigned char>(unhex(kResponse)));
    const std::string uuid = "0b7c5a6e-2f3d-4a1b-9c8d-7e6f5a4b3c2d";
    const Secret key = sc::derive_volume_key(response, kSeed, uuid);
    BOOST_TEST(key.size() == 64u);

    const std::string info = std::string(sc::kDeriveLabel) + uuid;
    const Secret okm = sc::hkdf_sha256(response.bytes(), kSeed, as_bytes(info), 32);
    std::string expect = hex(okm.bytes());
    for (char& c : expect) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    BOOST_TEST(std::string_view(key.chars(), key.size()) == expect);
    BOOST_TEST(!key.contains_byte(0));
}

BOOST_AUTO_TEST_CASE(uuid_case_does_not_matter_but_uuid_does) {
    const Secret response = Secret::copy_of(std::span<const unsigned char>(unhex(kResponse)));
    const Secret a = sc::derive_volume_key(response, kSeed, "0b7c5a6e-2f3d-4a1b-9c8d-7e6f5a4b3c2d");
    const Secret b = sc::derive_volume_key(response, kSeed, "0B7C5A6E-2F3D-4A1B-9C8D-7E6F5A4B3C2D");
    const Secret c = sc::derive_volume_key(response, kSeed, "0b7c5a6e-2f3d-4a1b-9c8d-7e6f5a4b3c2e");
    BOOST_TEST(a.equals(b));
    BOOST_TEST(!a.equals(c));
}

BOOST_AUTO_TEST_CASE(seed_and_response_both_matter) {
    const Secret r1 = Secret::copy_of(std::span<const unsigned char>(unhex(kResponse)));
    Secret r2 = r1.clone();
    r2.data()[0] ^= 1;
    auto seed2 = kSeed;
    seed2[31] ^= 1;
    const std::string uuid = "0b7c5a6e-2f3d-4a1b-9c8d-7e6f5a4b3c2d";
    const Secret base = sc::derive_volume_key(r1, kSeed, uuid);
    BOOST_TEST(!base.equals(sc::derive_volume_key(r2, kSeed, uuid)));
    BOOST_TEST(!base.equals(sc::derive_volume_key(r1, seed2, uuid)));
}
