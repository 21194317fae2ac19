// SPDX-License-Identifier: MIT
#include "smartcard/derive.hpp"

#include "proto/hex.hpp"
#include "smartcard/crypto_dl.hpp"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace ca::smartcard {
namespace {

struct KdfFree {
    void operator()(EVP_KDF* k) const noexcept { crypto::EVP_KDF_free(k); }
};
struct KdfCtxFree {
    void operator()(EVP_KDF_CTX* c) const noexcept { crypto::EVP_KDF_CTX_free(c); }
};

// OSSL_PARAM takes non-const pointers even for inputs it only reads.
void* mutable_ptr(std::span<const unsigned char> s) { return const_cast<unsigned char*>(s.data()); }

}  // namespace

proto::Secret hkdf_sha256(std::span<const unsigned char> ikm, std::span<const unsigned char> salt,
                          std::span<const unsigned char> info, std::size_t length) {
    if (std::string why = crypto::load("deriving a volume's key from the card (HKDF-SHA256)"); !why.empty())
        throw std::runtime_error(why);
    std::unique_ptr<EVP_KDF, KdfFree> kdf(crypto::EVP_KDF_fetch(nullptr, "HKDF", nullptr));
    if (!kdf) throw std::runtime_error("OpenSSL has no HKDF implementation");
    std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> ctx(crypto::EVP_KDF_CTX_new(kdf.get()));
    if (!ctx) throw std::runtime_error("OpenSSL could not allocate an HKDF context");

    char digest[] = "SHA256";
    // An empty key or salt is legal HKDF; OpenSSL wants a non-null pointer.
    static const unsigned char empty = 0;
    auto or_empty = [](std::span<const unsigned char> s) {
        return s.empty() ? std::span<const unsigned char>(&empty, 0) : s;
    };
    ikm = or_empty(ikm);
    salt = or_empty(salt);
    info = or_empty(info);
    OSSL_PARAM params[] = {
        crypto::OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        crypto::OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, mutable_ptr(ikm), ikm.size()),
        crypto::OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, mutable_ptr(salt), salt.size()),
        crypto::OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, mutable_ptr(info), info.size()),
        crypto::OSSL_PARAM_construct_end(),
    };
    proto::Secret out(length);
    if (crypto::EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1)
        throw std::runtime_error("OpenSSL HKDF-SHA256 derivation failed");
    return out;
}

std::string volume_info(std::string_view volume_uuid) {
    std::string info(kDeriveLabel);
    for (char c : volume_uuid) info.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    return info;
}

proto::Secret derive_volume_key(const proto::Secret& response, std::span<const unsigned char> seed,
                                std::string_view volume_uuid) {
    const std::string info = volume_info(volume_uuid);
    const proto::Secret okm = hkdf_sha256(
        response.bytes(), seed,
        std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(info.data()), info.size()),
        kDerivedKeyBytes);
    return proto::to_hex_secret(okm.bytes());
}

}  // namespace ca::smartcard
