// SPDX-License-Identifier: MIT
// One LUKS volume (a block device or an image file) opened through
// libcryptsetup, with the few operations enrolment and rotation need.
//
// Nothing here activates a mapping: a key is checked with
// crypt_activate_by_passphrase(cd, NULL, ...), which runs the keyslot's PBKDF
// and compares the digest without device-mapper (so it works in the initramfs
// before anything is unlocked, and in tests on image files).
//
// Errors are values; messages name the volume and the keyslot, never a key.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.hpp"
#include "proto/secret.hpp"

struct crypt_device;

namespace ca::agent::luks {

enum class LuksErrc {
    open_failed,        // no such file, not readable
    not_luks,           // no LUKS header
    header_write,       // the header could not be written (read-only device, I/O error)
    no_free_keyslot,    // every keyslot number is taken
    keyslot_area_full,  // LUKS2: no room left in the binary keyslot area
    wrong_key,          // a key that should open a keyslot does not
    not_enrolled,       // no crypt-agent record for this volume
    already_enrolled,
    store,  // the LUKS1 file store failed (I/O, corrupt)
    card,   // the card could not answer
    busy,   // another crypt-agent run holds the volume
    internal,
};

struct LuksError {
    LuksErrc code = LuksErrc::internal;
    std::string message;  // for an administrator; no secret, ever
};

template <class T>
using LuksResult = proto::Expected<T, LuksError>;
struct Done {};
using LuksStatus = LuksResult<Done>;

inline proto::Unexpected<LuksError> luks_error(LuksErrc code, std::string message) {
    return proto::unexpected(LuksError{code, std::move(message)});
}

// libcryptsetup's own messages, for the agent's log (the library would print them
// unprefixed on standard error).  `reported`: the text is also in the LuksError this module
// returns for the failure, so the log needs it only when debugging.  Set once at start,
// before any volume is opened; `debug` also turns on the library's debug lines.
enum class LibraryMessage { error, normal, verbose, debug };
using LibraryLog = void (*)(LibraryMessage kind, std::string_view text, bool reported);
void set_library_log(LibraryLog log, bool debug) noexcept;

class Volume {
public:
    // Opens and loads the header (LUKS1 or LUKS2).  Reads only.
    static LuksResult<Volume> open(const std::string& path);

    Volume(Volume&&) noexcept;
    Volume& operator=(Volume&&) noexcept;
    ~Volume();

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] const std::string& uuid() const noexcept { return uuid_; }
    [[nodiscard]] bool is_luks2() const noexcept { return luks2_; }
    [[nodiscard]] const char* type_name() const noexcept { return luks2_ ? "LUKS2" : "LUKS1"; }
    [[nodiscard]] int keyslot_max() const noexcept;

    [[nodiscard]] bool keyslot_active(int slot) const;
    [[nodiscard]] std::vector<int> active_keyslots() const;
    [[nodiscard]] std::optional<int> first_free_keyslot() const;
    // A keyslot that looks like one of ours: PBKDF2 at the minimum iteration count.
    // Only such slots are ever tried with derived keys in an orphan sweep, so a
    // person's Argon2 slot never costs a second of PBKDF per candidate.
    [[nodiscard]] bool is_cheap_keyslot(int slot) const;

    // The keyslot's PBKDF salt as text (LUKS2: the header JSON's base64; LUKS1:
    // hex of the on-disk key block), or nullopt if the slot is not in the header.
    // Identifies one keyslot instance: see proto::SeedGeneration::keyslot_salt.
    [[nodiscard]] std::optional<std::string> keyslot_salt(int slot) const;

    // Whether `key` opens `slot` (exactly that slot).
    [[nodiscard]] bool opens(int slot, const proto::Secret& key) const;
    // The keyslot `key` opens, if any.
    [[nodiscard]] std::optional<int> slot_opened_by(const proto::Secret& key) const;

    // Adds `slot` holding `new_key`, unlocking the volume key with `unlock`.
    // The slot gets PBKDF2 with the minimum iteration count: the key is 256
    // random bits, so a slow PBKDF would only slow the boot (systemd-cryptenroll
    // does the same for its tokens).
    LuksStatus add_cheap_keyslot(int slot, const proto::Secret& unlock, const proto::Secret& new_key);
    LuksStatus destroy_keyslot(int slot);

    // LUKS2 tokens of type crypt-agent: (id, json) of the first, if any.
    [[nodiscard]] LuksResult<std::optional<std::pair<int, std::string>>> read_agent_token() const;
    // Writes `json` as token `id` (or a new token when id < 0); an empty json removes it.
    LuksStatus write_agent_token(int id, const std::string& json);

    // Whether the header can be written at all (opened read-write), checked
    // before the first write so a read-only device fails with its own reason
    // rather than libcryptsetup's generic EINVAL halfway through.
    LuksStatus check_writable() const;

    // Takes an exclusive lock (a file <uuid>.lock in `lock_dir`) for this
    // object's lifetime, so two runs never interleave their steps on one volume.
    LuksStatus lock_exclusive(const std::string& lock_dir);

private:
    Volume() = default;
    [[nodiscard]] std::string last_library_error() const;
    std::string path_;
    std::string uuid_;
    bool luks2_ = false;
    crypt_device* cd_ = nullptr;
    int lock_fd_ = -1;
    // libcryptsetup's own explanation of its last failure (e.g. "No space for
    // new keyslot."), kept to make our messages actionable.
    std::unique_ptr<std::string> library_log_;
};

}  // namespace ca::agent::luks
