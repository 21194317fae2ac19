// SPDX-License-Identifier: MIT
// The smartcard settings ("card-*"), typed: filled by the one settings parser
// (agent/config/options.cpp, from the file and the command line alike) and read by
// serve's card source, enroll, rotate, finish and the card commands.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "smartcard/service.hpp"

namespace ca::agent {

// Where LUKS1 volumes' seed records live; it must be readable in the initramfs.  Set
// at configure time (CRYPT_AGENT_LUKS1_STORE), which also puts it into the finish
// unit's ReadWritePaths=, so the default and the unit cannot disagree.
#ifndef CRYPT_AGENT_LUKS1_STORE
#error "CRYPT_AGENT_LUKS1_STORE must be defined by the build (CMake cache value)"
#endif
inline constexpr const char* kDefaultLuks1Store = CRYPT_AGENT_LUKS1_STORE;

struct CardSourceConfig {
    smartcard::CardOptions card;
    std::filesystem::path seed_file;             // raw bytes or hex text
    std::map<std::string, std::string> volumes;  // question Id -> LUKS UUID
    bool luks_tokens = true;
    std::string luks1_dir = kDefaultLuks1Store;
    std::filesystem::path crypttab = "/etc/crypttab";  // card-crypttab: volumes card-early prepares, finish rotates
    std::chrono::seconds pin_timeout{180};
    // card-wait: how long enroll, rotate and `card derive` wait for a usable card.
    std::chrono::milliseconds wait{30000};
    bool enable = false;  // card-enable; any card-volume line enables too
    // card-early: ask the card for every card-volume at start-up and hold
    // READY=1 until done or early_wait passed; nullopt = auto (in the initramfs).
    std::optional<bool> early;
    std::chrono::milliseconds early_wait{15000};
    // card-prepare-rotation: challenge a fresh seed in the same card operation,
    // for `finish` to rotate with (and rotate-on-finish not "no"); only when an
    // enrolled volume is asked for.
    bool challenge_next = true;
    [[nodiscard]] bool enabled() const { return enable || !volumes.empty(); }
};

// Applies one card-* setting through the settings table (agent/config/options.cpp): the
// same parser as the file and the command line.  Returns the reason for a refusal.
[[nodiscard]] std::optional<std::string> apply_card_setting(CardSourceConfig& c, const std::string& name,
                                                            const std::string& value);

}  // namespace ca::agent
