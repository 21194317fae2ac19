// SPDX-License-Identifier: MIT
// A software stand-in for the virtual card, for tests only: it computes exactly
// what the vicc fixture card answers to INTERNAL AUTHENTICATE (AES-128-CBC,
// IV 0, card key 000102..0F, over the seed).  Tests using it carry
// "software_card" in their names; the real card path is tested with the fixture.
#pragma once

#include <openssl/evp.h>

#include <memory>

#include "agent/luks/rotation.hpp"

namespace ca::test {

inline smartcard::Expected<proto::Secret> software_card_response(std::span<const unsigned char> seed) {
    if (seed.empty() || seed.size() % 16 != 0 || seed.size() > 240)
        return smartcard::make_error(smartcard::Errc::bad_profile, "seed must be 16..240 bytes, a multiple of 16");
    static const unsigned char key[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    static const unsigned char iv[16] = {};
    struct Free {
        void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
    };
    std::unique_ptr<EVP_CIPHER_CTX, Free> ctx(EVP_CIPHER_CTX_new());
    proto::Secret out(seed.size());
    int len = 0, fin = 0;
    if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_cbc(), nullptr, key, iv) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 ||
        EVP_EncryptUpdate(ctx.get(), out.data(), &len, seed.data(), static_cast<int>(seed.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &fin) != 1)
        return smartcard::make_error(smartcard::Errc::internal, "OpenSSL AES failed");
    return out;
}

inline agent::luks::CardAccess software_card() {
    auto batch = [](const std::vector<std::vector<unsigned char>>& seeds,
                    bool) -> smartcard::Expected<std::vector<proto::Secret>> {
        std::vector<proto::Secret> out;
        for (const auto& seed : seeds) {
            auto r = software_card_response(seed);
            if (!r) return std::move(r).error();
            out.push_back(std::move(r).value());
        }
        return out;
    };
    return agent::luks::CardAccess{software_card_response, "software-test", batch, {}, {}, {}};
}

}  // namespace ca::test
