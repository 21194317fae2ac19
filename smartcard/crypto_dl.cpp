// SPDX-License-Identifier: MIT
#include "smartcard/crypto_dl.hpp"

#include "smartcard/dl.hpp"

#include <openssl/opensslv.h>

// libcrypto's soname follows OpenSSL's major version; Debian 12 and 13 ship OpenSSL 3.
static_assert(OPENSSL_VERSION_MAJOR == 3, "libcrypto.so.3 is the soname loaded below");

namespace ca::smartcard::crypto {

decltype(&::EVP_KDF_fetch) EVP_KDF_fetch = nullptr;
decltype(&::EVP_KDF_free) EVP_KDF_free = nullptr;
decltype(&::EVP_KDF_CTX_new) EVP_KDF_CTX_new = nullptr;
decltype(&::EVP_KDF_CTX_free) EVP_KDF_CTX_free = nullptr;
decltype(&::EVP_KDF_derive) EVP_KDF_derive = nullptr;
decltype(&::OSSL_PARAM_construct_utf8_string) OSSL_PARAM_construct_utf8_string = nullptr;
decltype(&::OSSL_PARAM_construct_octet_string) OSSL_PARAM_construct_octet_string = nullptr;
decltype(&::OSSL_PARAM_construct_end) OSSL_PARAM_construct_end = nullptr;
decltype(&::OSSL_PARAM_BLD_new) OSSL_PARAM_BLD_new = nullptr;
decltype(&::BN_bin2bn) BN_bin2bn = nullptr;
decltype(&::OSSL_PARAM_BLD_push_BN) OSSL_PARAM_BLD_push_BN = nullptr;
decltype(&::OSSL_PARAM_BLD_to_param) OSSL_PARAM_BLD_to_param = nullptr;
decltype(&::EVP_PKEY_CTX_new_from_name) EVP_PKEY_CTX_new_from_name = nullptr;
decltype(&::EVP_PKEY_fromdata_init) EVP_PKEY_fromdata_init = nullptr;
decltype(&::EVP_PKEY_fromdata) EVP_PKEY_fromdata = nullptr;
decltype(&::EVP_PKEY_CTX_new) EVP_PKEY_CTX_new = nullptr;
decltype(&::EVP_PKEY_verify_init) EVP_PKEY_verify_init = nullptr;
decltype(&::EVP_PKEY_CTX_set_rsa_padding) EVP_PKEY_CTX_set_rsa_padding = nullptr;
decltype(&::EVP_PKEY_verify) EVP_PKEY_verify = nullptr;
decltype(&::EVP_PKEY_CTX_free) EVP_PKEY_CTX_free = nullptr;
decltype(&::EVP_PKEY_free) EVP_PKEY_free = nullptr;
decltype(&::OSSL_PARAM_free) OSSL_PARAM_free = nullptr;
decltype(&::BN_free) BN_free = nullptr;
decltype(&::OSSL_PARAM_BLD_free) OSSL_PARAM_BLD_free = nullptr;
decltype(&::EVP_PKEY_Q_keygen) EVP_PKEY_Q_keygen = nullptr;
decltype(&::EVP_PKEY_get_octet_string_param) EVP_PKEY_get_octet_string_param = nullptr;

std::string load(const char* what) {
    static dl::Library lib("libcrypto.so.3");
    static const dl::Symbol symbols[] = {
        dl::symbol(EVP_KDF_fetch, "EVP_KDF_fetch"),
        dl::symbol(EVP_KDF_free, "EVP_KDF_free"),
        dl::symbol(EVP_KDF_CTX_new, "EVP_KDF_CTX_new"),
        dl::symbol(EVP_KDF_CTX_free, "EVP_KDF_CTX_free"),
        dl::symbol(EVP_KDF_derive, "EVP_KDF_derive"),
        dl::symbol(OSSL_PARAM_construct_utf8_string, "OSSL_PARAM_construct_utf8_string"),
        dl::symbol(OSSL_PARAM_construct_octet_string, "OSSL_PARAM_construct_octet_string"),
        dl::symbol(OSSL_PARAM_construct_end, "OSSL_PARAM_construct_end"),
        dl::symbol(OSSL_PARAM_BLD_new, "OSSL_PARAM_BLD_new"),
        dl::symbol(BN_bin2bn, "BN_bin2bn"),
        dl::symbol(OSSL_PARAM_BLD_push_BN, "OSSL_PARAM_BLD_push_BN"),
        dl::symbol(OSSL_PARAM_BLD_to_param, "OSSL_PARAM_BLD_to_param"),
        dl::symbol(EVP_PKEY_CTX_new_from_name, "EVP_PKEY_CTX_new_from_name"),
        dl::symbol(EVP_PKEY_fromdata_init, "EVP_PKEY_fromdata_init"),
        dl::symbol(EVP_PKEY_fromdata, "EVP_PKEY_fromdata"),
        dl::symbol(EVP_PKEY_CTX_new, "EVP_PKEY_CTX_new"),
        dl::symbol(EVP_PKEY_verify_init, "EVP_PKEY_verify_init"),
        dl::symbol(EVP_PKEY_CTX_set_rsa_padding, "EVP_PKEY_CTX_set_rsa_padding"),
        dl::symbol(EVP_PKEY_verify, "EVP_PKEY_verify"),
        dl::symbol(EVP_PKEY_CTX_free, "EVP_PKEY_CTX_free"),
        dl::symbol(EVP_PKEY_free, "EVP_PKEY_free"),
        dl::symbol(OSSL_PARAM_free, "OSSL_PARAM_free"),
        dl::symbol(BN_free, "BN_free"),
        dl::symbol(OSSL_PARAM_BLD_free, "OSSL_PARAM_BLD_free"),
        dl::symbol(EVP_PKEY_Q_keygen, "EVP_PKEY_Q_keygen"),
        dl::symbol(EVP_PKEY_get_octet_string_param, "EVP_PKEY_get_octet_string_param"),
    };
    return lib.load(symbols, what);
}

}  // namespace ca::smartcard::crypto
