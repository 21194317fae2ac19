// Kernel keyring access (keyutils).  Errors are errno values.
//
// Why these permissions: keys we add carry possessor-all and user-view, as
// systemd's own "cryptsetup" entry does, so only a process that possesses the
// keyring (its session keyring links it: KeyringMode=shared in our units) can read
// them, and `keyctl show` by the same uid shows they exist without their contents.
#pragma once

#include <keyutils.h>

#include <optional>
#include <string>

#include "agent/options.hpp"
#include "proto/result.hpp"
#include "proto/secret.hpp"

namespace ca::agent::keyring {

[[nodiscard]] key_serial_t special_id(KeyringKind k) noexcept;

// Finds a "user" key by description in the keyring (and keyrings it links).
// ENOKEY when absent; EKEYEXPIRED/EKEYREVOKED when dead.
[[nodiscard]] proto::Expected<key_serial_t, int> find(KeyringKind k, const std::string& description);

// Reads a key's payload straight into locked memory.
[[nodiscard]] proto::Expected<proto::Secret, int> read(key_serial_t key);

// Adds or updates a "user" key with a kernel timeout (0 = none).
[[nodiscard]] proto::Expected<key_serial_t, int> put(KeyringKind k, const std::string& description,
                                                     std::span<const unsigned char> payload, unsigned timeout_s);

// Invalidates the key if present.  Returns true if one was removed.
[[nodiscard]] proto::Expected<bool, int> remove(KeyringKind k, const std::string& description);

}  // namespace ca::agent::keyring
