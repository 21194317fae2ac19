// SPDX-License-Identifier: MIT
// libcryptsetup, loaded on first use (see smartcard/dl.hpp), as systemd loads it
// (src/shared/cryptsetup-util.c, dlopen_cryptsetup()): only enrolment, rotation and a card
// volume's seed record open a LUKS header; with its libdevmapper, libblkid, libjson-c and
// libargon2 it was the largest part of what every serve mapped at start.
#pragma once

#include <libcryptsetup.h>

#include <string>

namespace ca::agent::luks::cryptsetup {

// Loads libcryptsetup once; empty when loaded, else why not, naming the library and `what`.
[[nodiscard]] std::string load(const char* what);

// The functions we call, under their own names, filled by load(): call them only after it
// succeeded.
extern decltype(&::crypt_init) crypt_init;
extern decltype(&::crypt_set_log_callback) crypt_set_log_callback;
extern decltype(&::crypt_set_debug_level) crypt_set_debug_level;
extern decltype(&::crypt_load) crypt_load;
extern decltype(&::crypt_get_type) crypt_get_type;
extern decltype(&::crypt_get_uuid) crypt_get_uuid;
extern decltype(&::crypt_free) crypt_free;
extern decltype(&::crypt_keyslot_max) crypt_keyslot_max;
extern decltype(&::crypt_keyslot_status) crypt_keyslot_status;
extern decltype(&::crypt_keyslot_get_pbkdf) crypt_keyslot_get_pbkdf;
extern decltype(&::crypt_dump_json) crypt_dump_json;
extern decltype(&::crypt_activate_by_passphrase) crypt_activate_by_passphrase;
extern decltype(&::crypt_set_pbkdf_type) crypt_set_pbkdf_type;
extern decltype(&::crypt_keyslot_add_by_passphrase) crypt_keyslot_add_by_passphrase;
extern decltype(&::crypt_keyslot_destroy) crypt_keyslot_destroy;
extern decltype(&::crypt_token_max) crypt_token_max;
extern decltype(&::crypt_token_status) crypt_token_status;
extern decltype(&::crypt_token_json_get) crypt_token_json_get;
extern decltype(&::crypt_token_json_set) crypt_token_json_set;

}  // namespace ca::agent::luks::cryptsetup
