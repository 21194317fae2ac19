// SPDX-License-Identifier: MIT
// OpenSSL's libcrypto, loaded on first use (see smartcard/dl.hpp): only a card's key derivation
// (HKDF) and a PKCS#11 key's checks need it, never a typed passphrase.
#pragma once

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include <string>

namespace ca::smartcard::crypto {

// Loads libcrypto once; empty when loaded, else why not, naming the library and `what`.
[[nodiscard]] std::string load(const char* what);

// The functions we call, under their own names, filled by load(): call them only after it
// succeeded.
extern decltype(&::EVP_KDF_fetch) EVP_KDF_fetch;
extern decltype(&::EVP_KDF_free) EVP_KDF_free;
extern decltype(&::EVP_KDF_CTX_new) EVP_KDF_CTX_new;
extern decltype(&::EVP_KDF_CTX_free) EVP_KDF_CTX_free;
extern decltype(&::EVP_KDF_derive) EVP_KDF_derive;
extern decltype(&::OSSL_PARAM_construct_utf8_string) OSSL_PARAM_construct_utf8_string;
extern decltype(&::OSSL_PARAM_construct_octet_string) OSSL_PARAM_construct_octet_string;
extern decltype(&::OSSL_PARAM_construct_end) OSSL_PARAM_construct_end;
extern decltype(&::OSSL_PARAM_BLD_new) OSSL_PARAM_BLD_new;
extern decltype(&::BN_bin2bn) BN_bin2bn;
extern decltype(&::OSSL_PARAM_BLD_push_BN) OSSL_PARAM_BLD_push_BN;
extern decltype(&::OSSL_PARAM_BLD_to_param) OSSL_PARAM_BLD_to_param;
extern decltype(&::EVP_PKEY_CTX_new_from_name) EVP_PKEY_CTX_new_from_name;
extern decltype(&::EVP_PKEY_fromdata_init) EVP_PKEY_fromdata_init;
extern decltype(&::EVP_PKEY_fromdata) EVP_PKEY_fromdata;
extern decltype(&::EVP_PKEY_CTX_new) EVP_PKEY_CTX_new;
extern decltype(&::EVP_PKEY_verify_init) EVP_PKEY_verify_init;
extern decltype(&::EVP_PKEY_CTX_set_rsa_padding) EVP_PKEY_CTX_set_rsa_padding;
extern decltype(&::EVP_PKEY_verify) EVP_PKEY_verify;
extern decltype(&::EVP_PKEY_CTX_free) EVP_PKEY_CTX_free;
extern decltype(&::EVP_PKEY_free) EVP_PKEY_free;
extern decltype(&::OSSL_PARAM_free) OSSL_PARAM_free;
extern decltype(&::BN_free) BN_free;
extern decltype(&::OSSL_PARAM_BLD_free) OSSL_PARAM_BLD_free;
extern decltype(&::EVP_PKEY_Q_keygen) EVP_PKEY_Q_keygen;
extern decltype(&::EVP_PKEY_get_octet_string_param) EVP_PKEY_get_octet_string_param;

}  // namespace ca::smartcard::crypto
