// SPDX-License-Identifier: MIT
#include "agent/luks/cryptsetup_dl.hpp"

#include "smartcard/dl.hpp"

namespace ca::agent::luks::cryptsetup {

decltype(&::crypt_init) crypt_init = nullptr;
decltype(&::crypt_set_log_callback) crypt_set_log_callback = nullptr;
decltype(&::crypt_set_debug_level) crypt_set_debug_level = nullptr;
decltype(&::crypt_load) crypt_load = nullptr;
decltype(&::crypt_get_type) crypt_get_type = nullptr;
decltype(&::crypt_get_uuid) crypt_get_uuid = nullptr;
decltype(&::crypt_free) crypt_free = nullptr;
decltype(&::crypt_keyslot_max) crypt_keyslot_max = nullptr;
decltype(&::crypt_keyslot_status) crypt_keyslot_status = nullptr;
decltype(&::crypt_keyslot_get_pbkdf) crypt_keyslot_get_pbkdf = nullptr;
decltype(&::crypt_dump_json) crypt_dump_json = nullptr;
decltype(&::crypt_activate_by_passphrase) crypt_activate_by_passphrase = nullptr;
decltype(&::crypt_set_pbkdf_type) crypt_set_pbkdf_type = nullptr;
decltype(&::crypt_keyslot_add_by_passphrase) crypt_keyslot_add_by_passphrase = nullptr;
decltype(&::crypt_keyslot_destroy) crypt_keyslot_destroy = nullptr;
decltype(&::crypt_token_max) crypt_token_max = nullptr;
decltype(&::crypt_token_status) crypt_token_status = nullptr;
decltype(&::crypt_token_json_get) crypt_token_json_get = nullptr;
decltype(&::crypt_token_json_set) crypt_token_json_set = nullptr;

std::string load(const char* what) {
    // The soname libcryptsetup has had since 2.0 (Debian 12 ships 2.6, Debian 13 2.7).
    static smartcard::dl::Library lib("libcryptsetup.so.12");
    static const smartcard::dl::Symbol symbols[] = {
        smartcard::dl::symbol(crypt_init, "crypt_init"),
        smartcard::dl::symbol(crypt_set_log_callback, "crypt_set_log_callback"),
        smartcard::dl::symbol(crypt_set_debug_level, "crypt_set_debug_level"),
        smartcard::dl::symbol(crypt_load, "crypt_load"),
        smartcard::dl::symbol(crypt_get_type, "crypt_get_type"),
        smartcard::dl::symbol(crypt_get_uuid, "crypt_get_uuid"),
        smartcard::dl::symbol(crypt_free, "crypt_free"),
        smartcard::dl::symbol(crypt_keyslot_max, "crypt_keyslot_max"),
        smartcard::dl::symbol(crypt_keyslot_status, "crypt_keyslot_status"),
        smartcard::dl::symbol(crypt_keyslot_get_pbkdf, "crypt_keyslot_get_pbkdf"),
        smartcard::dl::symbol(crypt_dump_json, "crypt_dump_json"),
        smartcard::dl::symbol(crypt_activate_by_passphrase, "crypt_activate_by_passphrase"),
        smartcard::dl::symbol(crypt_set_pbkdf_type, "crypt_set_pbkdf_type"),
        smartcard::dl::symbol(crypt_keyslot_add_by_passphrase, "crypt_keyslot_add_by_passphrase"),
        smartcard::dl::symbol(crypt_keyslot_destroy, "crypt_keyslot_destroy"),
        smartcard::dl::symbol(crypt_token_max, "crypt_token_max"),
        smartcard::dl::symbol(crypt_token_status, "crypt_token_status"),
        smartcard::dl::symbol(crypt_token_json_get, "crypt_token_json_get"),
        smartcard::dl::symbol(crypt_token_json_set, "crypt_token_json_set"),
    };
    return lib.load(symbols, what);
}

}  // namespace ca::agent::luks::cryptsetup
