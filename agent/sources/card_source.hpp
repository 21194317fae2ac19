// SPDX-License-Identifier: MIT
// Candidates from the smartcard for `cryptsetup:` questions (serve).
//
// At the first card operation the source derives the key of every volume the
// configuration names (card-volume), not only the one that asked: they share
// the seed, so one challenge serves all, and the keys join the boot-scoped
// cache that the real root's instance inherits (no second PIN after
// switch-root).  With card-early (the default in the initramfs) that first
// operation starts at start-up, before systemd-cryptsetup asks (see prefetch
// in agent/sources/source.hpp): systemd's console agent shows one question at a time,
// and a disk's prompt on screen would hide the PIN question behind it.
//
// For a question's Id the source finds the volume's UUID and its seeds, asks
// the card once per seed (one PIN prompt, one challenge per seed however many
// volumes share it: smartcard::CardService remembers responses), and delivers
// HKDF(response, seed, UUID) for each seed generation.  Until a card is in a
// reader the request simply waits: the question stays open for other agents
// too, and insertion answers every waiting volume.
//
// Where the seeds come from, in order:
//   * `card-volume = ID UUID` lines with `card-seed-file` (the interim setup
//     before enrolment: one seed for every listed volume);
//   * with `card-luks-tokens = yes` (default), the seed record that
//     `crypt-agent enroll` wrote into the volume (LUKS2 token or LUKS1 store)
//     for Ids of the form cryptsetup:<device path> or cryptsetup:UUID=<uuid>.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config/card_config.hpp"
#include "agent/sources/source.hpp"
#include "smartcard/service.hpp"

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

// nullptr when the configuration enables no card volumes.
[[nodiscard]] std::unique_ptr<CandidateSource> make_card_source(boost::asio::io_context& io,
                                                                const CardSourceConfig& config,
                                                                const std::filesystem::path& ask_dir,
                                                                CandidateSource::Deliver deliver, BootMemo memo = {});
// The same with an explicit lookup (tests).
[[nodiscard]] std::unique_ptr<CandidateSource> make_card_source(boost::asio::io_context& io,
                                                                const CardSourceConfig& config,
                                                                const std::filesystem::path& ask_dir, SeedLookup lookup,
                                                                CandidateSource::Deliver deliver, BootMemo memo = {});

// The volumes the initramfs will ask for, as systemd-cryptsetup names them:
// rd.luks.uuid= and rd.luks.name= on the kernel command line (`cmdline`), and
// the sources in `crypttab`; UUID= becomes /dev/disk/by-uuid/.  Question Ids
// ("cryptsetup:/dev/disk/by-uuid/<uuid>"), without duplicates.  Missing files
// give nothing.
[[nodiscard]] std::vector<std::string> boot_volume_ids(const std::filesystem::path& cmdline,
                                                       const std::filesystem::path& crypttab);

}  // namespace ca::agent
