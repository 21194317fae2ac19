// SPDX-License-Identifier: MIT
// Where a card volume's seeds come from, for a question's Id, in order:
//   * `card-volume = ID UUID` lines with `card-seed-file` (the interim setup
//     before enrolment: one seed for every listed volume);
//   * with `card-luks-tokens = yes` (default), the seed record that
//     `crypt-agent enroll` wrote into the volume (LUKS2 token or LUKS1 store)
//     for Ids of the form cryptsetup:<device path> or cryptsetup:UUID=<uuid>.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/config/card_config.hpp"

namespace ca::agent {

// What one volume needs from the card.
struct VolumeSeedSet {
    std::string uuid;
    std::vector<std::vector<unsigned char>> seeds;  // current first
    bool enrolled = false;                          // from a seed record (crypt-agent enroll)
};
// Finds the seeds for a question Id; nullopt when the Id is not a card volume.
using SeedLookup = std::function<std::optional<VolumeSeedSet>(const std::string& id)>;

// The configured lookup (card-volume + card-seed-file, then LUKS seed records).
// Throws std::runtime_error when the seed file cannot be read (a start-up error).
[[nodiscard]] SeedLookup make_seed_lookup(const CardSourceConfig& c);

}  // namespace ca::agent
