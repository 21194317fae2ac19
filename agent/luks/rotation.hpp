// SPDX-License-Identifier: MIT
// Enrolment and crash-safe rotation of the agent's one-time LUKS keys.
//
// A volume's agent key is HKDF(card response to a seed, seed, volume UUID)
// (smartcard/derive.hpp).  Rotation swaps the seed.  Per volume, each step is
// one durable write, and the seed record names every agent keyslot *before*
// the keyslot exists, so a crash at any instant leaves:
//
//   step                               record after the step          what opens
//   1 record intent                    {current c, pending p}         c (+ person)
//   2 add keyslot p (unlocked by c)    {current c, pending p}         c, p
//   3 verify p opens                   (no write)
//   4 record switch                    {current p, previous c}        p, c
//   5 destroy keyslot c                {current p, previous c}        p
//   6 record cleanup                   {current p}                    p
//
// The next run (rotate or enroll) first recovers: a pending keyslot that opens
// with its key is rolled forward (it becomes current, the old one previous); a
// previous keyslot is destroyed once the current key is proven to open; any
// cheap keyslot that no record names but a known derived key opens is removed
// as an orphan.  A keyslot is destroyed only when it is proven ours: one of our
// derived keys opens it in this run, or it still carries the PBKDF salt the
// record noted when it was ours (a destroy cut short by a crash leaves the slot
// listed with its key material already wiped).  The person's keyslot is never
// touched, and the last keyslot is never destroyed.
//
// Boot-time candidates (candidates_for_volume) are every generation the record
// names, so during the window between steps 4 and 6 both keys are offered.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "agent/luks/seed_store.hpp"
#include "agent/luks/volume.hpp"
#include "proto/secret.hpp"
#include "proto/seed_token.hpp"
#include "smartcard/derive.hpp"

namespace ca::agent::luks {

// Several seeds answered in one card session (one PIN prompt); with
// check_determinism each challenge is sent twice and compared.
using BatchChallengeFn = std::function<smartcard::Expected<std::vector<proto::Secret>>(
    const std::vector<std::vector<unsigned char>>& seeds, bool check_determinism)>;

// 32 bytes from getrandom(): a multiple of 16 as the vicc AES profile requires.
std::vector<unsigned char> make_seed();

struct CardAccess {
    smartcard::ChallengeFn challenge;  // seed -> the card's response
    std::string profile_id;            // recorded in each record; checked at rotate
    BatchChallengeFn batch;            // optional: one session for many seeds
    // optional: seeds answered without the card (responses from the boot's unlock);
    // they do not count as card operations.
    std::function<bool(const std::vector<unsigned char>& seed)> remembered;
    // PKCS#11: the key's URI, written into new records (version 2).
    std::string key_uri;
    // optional: a fresh seed for this card, shaped like `like` (a recorded seed,
    // or empty at enrolment): an EC key's seed is an ephemeral public point.
    // Default: make_seed().
    std::function<std::vector<unsigned char>(const std::vector<unsigned char>& like)> new_seed;
};

// Asks the card once per distinct seed and remembers the answer (or the failure)
// for the rest of the run: one card operation per seed, however many volumes.
class ResponseCache {
public:
    explicit ResponseCache(CardAccess& card) : card_(card) {}
    LuksResult<const proto::Secret*> response(const std::vector<unsigned char>& seed);
    // Answers every seed not yet known in one card operation when the card
    // offers a batch (one PIN prompt for the whole run); remembers failures too.
    // With check_determinism (enrolment) each seed is asked twice and compared.
    void prefetch(const std::vector<std::vector<unsigned char>>& seeds, bool check_determinism);
    [[nodiscard]] int card_operations() const noexcept { return operations_; }
    [[nodiscard]] const std::string& profile_id() const noexcept { return card_.profile_id; }
    [[nodiscard]] const std::string& key_uri() const noexcept { return card_.key_uri; }
    [[nodiscard]] std::vector<unsigned char> new_seed(const std::vector<unsigned char>& like) const {
        return card_.new_seed ? card_.new_seed(like) : make_seed();
    }

private:
    CardAccess& card_;
    std::map<std::vector<unsigned char>, std::variant<proto::Secret, LuksError>> answers_;
    int operations_ = 0;
};

struct VolumeOutcome {
    std::string path;
    bool ok = false;
    LuksErrc code = LuksErrc::internal;  // meaningful when !ok
    std::string summary;                 // one line for the journal
    std::vector<std::string> notes;      // recovery actions and warnings, in order
};

// Receives progress while a run works (a terminal shows it; the journal does not).
class Progress {
public:
    virtual ~Progress() = default;
    virtual void step(const std::string& volume, const std::string& what) = 0;
};

struct RunOptions {
    bool dry_run = false;
    StoreOptions store;
    // rotate: the seed to rotate to, when its response was obtained earlier (the
    // boot's card operation; see `finish`); empty: a fresh one from getrandom().
    std::vector<unsigned char> new_seed;
};

// Enrols each volume with one fresh seed for the whole run.  `passphrases`
// holds one existing passphrase for every volume, or one per volume in order.
// The person's keyslot is only used to unlock; it is never changed.
std::vector<VolumeOutcome> enroll(const std::vector<std::string>& volumes,
                                  const std::vector<proto::Secret>& passphrases, ResponseCache& card,
                                  const RunOptions& opts, Progress& progress);

// Rotates each volume to one fresh seed (one card operation for it), after
// recovering any half-done earlier run.  Failures are isolated per volume.
std::vector<VolumeOutcome> rotate(const std::vector<std::string>& volumes, ResponseCache& card, const RunOptions& opts,
                                  Progress& progress);

// What the agent offers at boot: every generation the record names (current
// first; during a rotation's window also the previous or pending one), with
// the volume's UUID for derivation.  Reads the header or the LUKS1 store only.
struct VolumeSeeds {
    std::string uuid;
    std::string profile;
    std::vector<proto::SeedGeneration> generations;
};
LuksResult<VolumeSeeds> candidates_for_volume(const std::string& path, const StoreOptions& opts);

}  // namespace ca::agent::luks
