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
// Where the seeds come from: agent/sources/seed_lookup.hpp.
#pragma once

#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <memory>

#include "agent/config/card_config.hpp"
#include "agent/sources/seed_lookup.hpp"
#include "agent/sources/source.hpp"

namespace ca::agent {

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

}  // namespace ca::agent
