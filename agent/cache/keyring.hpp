// SPDX-License-Identifier: MIT
// Kernel keyring access (keyutils).  Errors are errno values.
//
// Why these permissions: keys we add grant everything to their owner (uid 0) and
// nothing to anyone else, possessors included.  A process that drops to another uid but
// keeps root's session keyring (runuser, setpriv, su without pam_keyinit force) possesses
// every key linked there: with possessor bits (systemd's "cryptsetup" entry has them) it
// could read the cache, remove its timeout or overwrite it.
#pragma once

#include <keyutils.h>

#include <optional>
#include <string>

#include "agent/config/options.hpp"
#include "proto/result.hpp"
#include "proto/secret.hpp"

namespace ca::agent::keyring {

[[nodiscard]] key_serial_t special_id(KeyringKind k) noexcept;

// Finds a "user" key by description in the keyring (and keyrings it links).
// ENOKEY when absent; EKEYEXPIRED/EKEYREVOKED when dead.
[[nodiscard]] proto::Expected<key_serial_t, int> find(KeyringKind k, const std::string& description);

// Reads a key's payload straight into locked memory.
[[nodiscard]] proto::Expected<proto::Secret, int> read(key_serial_t key);

// Adds or updates a "user" key, owned by us and readable by nobody else, with a kernel
// timeout (0 = none).  A new key each time: it replaces the link of any key of that name
// (one planted by another uid is displaced, never written to).
[[nodiscard]] proto::Expected<key_serial_t, int> put(KeyringKind k, const std::string& description,
                                                     std::span<const unsigned char> payload, unsigned timeout_s);

// Whether the key belongs to this process's effective uid (a key planted by another uid
// into a keyring we share is not ours to read from).  Error: errno of KEYCTL_DESCRIBE.
[[nodiscard]] proto::Expected<bool, int> ours(key_serial_t key);

// Invalidates the key if present.  Returns true if one was removed.
[[nodiscard]] proto::Expected<bool, int> remove(KeyringKind k, const std::string& description);

}  // namespace ca::agent::keyring
