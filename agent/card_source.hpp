// Candidates from the smartcard for `cryptsetup:` questions (serve).
//
// At the first card operation the source derives the key of every volume the
// configuration names (card-volume), not only the one that asked: they share
// the seed, so one challenge serves all, and the keys join the boot-scoped
// cache that the real root's instance inherits (no second PIN after
// switch-root).  With card-early (the default in the initramfs) that first
// operation starts at start-up, before systemd-cryptsetup asks (see prefetch
// in agent/source.hpp): systemd's console agent shows one question at a time,
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

#include "agent/source.hpp"
#include "smartcard/service.hpp"

namespace ca::agent {

struct CardSourceConfig {
    smartcard::CardOptions card;
    std::filesystem::path seed_file;           // raw bytes or hex text
    std::map<std::string, std::string> volumes;  // question Id -> LUKS UUID
    bool luks_tokens = true;
    std::string luks1_dir = "/boot/crypt-agent";
    std::filesystem::path crypttab = "/etc/crypttab";  // card-crypttab: volumes card-early prepares
    std::chrono::seconds pin_timeout{180};
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

// Applies one configuration setting whose name starts with "card-":
//   card-enable yes|no, card-volume "ID UUID" (repeatable), card-seed-file PATH,
//   card-luks-tokens yes|no, card-luks1-dir DIR, card-reader SUBSTRING, card-aid HEX,
//   card-command CLAINSP1P2, card-challenge-length N, card-pin-reference HEX|none,
//   card-watchdog SECONDS, card-pin-timeout SECONDS, card-allow-last-pin-try yes|no,
//   card-early yes|no|auto, card-early-wait SECONDS, card-crypttab PATH,
//   card-prepare-rotation yes|no.
// Returns the reason for a refusal, or nullopt.  Unknown card-* names are refused.
[[nodiscard]] std::optional<std::string> apply_card_setting(CardSourceConfig& c, const std::string& name,
                                                            const std::string& value);

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
                                                                CandidateSource::Deliver deliver,
                                                                BootMemo memo = {});
// The same with an explicit lookup (tests).
[[nodiscard]] std::unique_ptr<CandidateSource> make_card_source(boost::asio::io_context& io,
                                                                const CardSourceConfig& config,
                                                                const std::filesystem::path& ask_dir,
                                                                SeedLookup lookup,
                                                                CandidateSource::Deliver deliver,
                                                                BootMemo memo = {});

// The card's responses kept in the boot cache (BootMemo), hex text under
// kMemoResponse + hex(seed) for the seeds the volumes use, and kMemoNext +
// hex(seed) for the fresh seed `finish` rotates to (proto::to_hex_secret).
inline constexpr std::string_view kMemoResponse = "crypt-agent:card-response:";
inline constexpr std::string_view kMemoNext = "crypt-agent:card-next:";
// The volumes the initramfs will ask for, as systemd-cryptsetup names them:
// rd.luks.uuid= and rd.luks.name= on the kernel command line (`cmdline`), and
// the sources in `crypttab`; UUID= becomes /dev/disk/by-uuid/.  Question Ids
// ("cryptsetup:/dev/disk/by-uuid/<uuid>"), without duplicates.  Missing files
// give nothing.
[[nodiscard]] std::vector<std::string> boot_volume_ids(const std::filesystem::path& cmdline,
                                                       const std::filesystem::path& crypttab);


}  // namespace ca::agent
