// SPDX-License-Identifier: MIT
// What the agent saw of systemd's own "cryptsetup" keyring entry, for the policy to learn
// from (answer/policy) without depending on how it was read (cache/systemd_entry).
#pragma once

#include <cstdint>
#include <unordered_map>

namespace ca::agent {

struct EntryHistory {
    const std::unordered_map<std::uint64_t, std::uint64_t>& first_seen;  // hash -> when first seen there (boottime µs)
    const std::unordered_map<std::uint64_t, std::uint64_t>&
        last_arrived;  // hash -> when it last arrived, kept after it goes
};

}  // namespace ca::agent
