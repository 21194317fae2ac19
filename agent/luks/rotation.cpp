// SPDX-License-Identifier: MIT
// Over 400 lines on purpose: one volume's rotation is a sequence of durable steps and the
// recovery from a crash after each (VolumeJob); the steps and their recovery are read and
// changed together (the crash tests stop the run after every step).
#include "agent/luks/rotation.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>

#include "agent/fault.hpp"

namespace ca::agent::luks {

namespace {
const std::string kNotDeterministic =
    "the card gave two different responses to one challenge: its profile is not deterministic "
    "and cannot derive keys";
}  // namespace

LuksResult<const proto::Secret*> ResponseCache::response(const std::vector<unsigned char>& seed) {
    auto it = answers_.find(seed);
    if (it == answers_.end()) {
        if (!card_.remembered || !card_.remembered(seed)) ++operations_;
        auto r = card_.challenge(seed);
        if (r) it = answers_.emplace(seed, std::move(r).value()).first;
        else
            it = answers_.emplace(seed, LuksError{LuksErrc::card, "the card did not answer: " + r.error().message})
                     .first;
    }
    if (auto* e = std::get_if<LuksError>(&it->second)) return proto::unexpected(*e);
    return &std::get<proto::Secret>(it->second);
}

void ResponseCache::prefetch(const std::vector<std::vector<unsigned char>>& seeds, bool check_determinism) {
    std::vector<std::vector<unsigned char>> missing;
    for (const auto& seed : seeds)
        if (!answers_.count(seed) && std::find(missing.begin(), missing.end(), seed) == missing.end())
            missing.push_back(seed);
    if (missing.empty()) return;
    if (!card_.batch) {
        for (const auto& seed : missing) {
            auto first = response(seed);
            if (!first || !check_determinism) continue;
            ++operations_;
            auto second = card_.challenge(seed);
            if (!second || !(*first)->equals(*second))
                answers_[seed] = LuksError{
                    LuksErrc::card, second ? kNotDeterministic : "the card did not answer: " + second.error().message};
        }
        return;
    }
    if (check_determinism || !card_.remembered ||
        !std::all_of(missing.begin(), missing.end(), [&](const auto& seed) { return card_.remembered(seed); }))
        ++operations_;
    auto r = card_.batch(missing, check_determinism);
    for (std::size_t i = 0; i < missing.size(); ++i) {
        if (r && r->size() == missing.size()) answers_.emplace(missing[i], std::move((*r)[i]));
        else
            answers_.emplace(missing[i],
                             LuksError{LuksErrc::card, r ? std::string("the card gave too few responses")
                                                         : "the card did not answer: " + r.error().message});
    }
}

std::vector<unsigned char> make_seed() {
    std::vector<unsigned char> seed(32);
    std::size_t got = 0;
    while (got < seed.size()) {
        const ssize_t n = ::getrandom(seed.data() + got, seed.size() - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
        got += static_cast<std::size_t>(n);
    }
    return seed;
}

namespace {

std::string slot_text(int slot) { return "keyslot " + std::to_string(slot); }
std::string gen_text(std::uint64_t g) { return "generation " + std::to_string(g); }

// One volume's work in one run.  Every method that writes ends in fault::after_step()
// so the crash tests can stop the run right after any durable step.
class VolumeJob {
public:
    VolumeJob(Volume vol, ResponseCache& card, const RunOptions& opts, Progress& progress, VolumeOutcome& out)
        : vol_(std::move(vol)),
          card_(card),
          opts_(opts),
          progress_(progress),
          out_(out),
          store_(store_for(vol_, opts.store)) {}

    LuksStatus load() {
        if (!opts_.dry_run) {
            auto writable = vol_.check_writable();
            if (!writable) return writable;
            auto locked = vol_.lock_exclusive(opts_.store.lock_dir);
            if (!locked) return locked;
        }
        auto loaded = store_->load(vol_);
        if (!loaded) return proto::unexpected(loaded.error());
        if (!loaded->warning.empty()) out_.notes.push_back(loaded->warning);
        if (loaded->record) rec_ = std::move(*loaded->record);
        else {
            rec_.profile = card_.profile_id();
            rec_.key_uri = card_.key_uri();
        }
        enrolled_ = rec_.current.has_value();
        return Done{};
    }

    // For --dry-run, which does not recover: say that a real run would.
    [[nodiscard]] std::string recovery_plan() const {
        if (rec_.pending)
            return "; first finishes an interrupted run (pending " + slot_text(rec_.pending->keyslot) + ")";
        if (rec_.previous) return "; first finishes an interrupted run (old " + slot_text(rec_.previous->keyslot) + ")";
        return {};
    }

    // Finishes or rolls back whatever an interrupted run left, then removes orphans.
    LuksStatus recover() {
        if (rec_.pending) {
            auto st = roll_forward_pending();
            if (!st) return st;
        }
        if (rec_.previous) {
            auto st = finish_previous();
            if (!st) return st;
        }
        return sweep_orphans();
    }

    LuksStatus enroll(const proto::Secret& passphrase, const std::vector<unsigned char>& seed) {
        if (!enrolled_ && rec_.current) {
            // Recovery just finished an enrolment that a crash interrupted.
            out_.summary = "enrolled: " + gen_text(rec_.current->generation) + " in " +
                           slot_text(rec_.current->keyslot) + " (finished an interrupted enrolment), record in " +
                           store_->describe(vol_);
            return Done{};
        }
        if (enrolled_) {
            // Idempotent, so re-running an interrupted enrol command completes;
            // but only if this card's key really opens the recorded keyslot.
            const proto::SeedGeneration cur = *rec_.current;
            if (rec_.profile != card_.profile_id())
                return luks_error(LuksErrc::already_enrolled,
                                  vol_.path() + " is already enrolled for card profile '" + rec_.profile + "'");
            if (!opts_.dry_run) {
                auto key = key_for(cur);
                if (!key) return proto::unexpected(key.error());
                if (!vol_.opens(cur.keyslot, **key))
                    return luks_error(LuksErrc::already_enrolled,
                                      vol_.path() + " is already enrolled, but this card's key does not open its " +
                                          slot_text(cur.keyslot) + " (another card?)");
            }
            out_.summary = "already enrolled (" + gen_text(cur.generation) + ", " + slot_text(cur.keyslot) +
                           "): nothing to do; rotate makes new keys";
            return Done{};
        }
        progress_.step(vol_.path(), "checking the passphrase");
        if (!vol_.slot_opened_by(passphrase))
            return luks_error(LuksErrc::wrong_key, vol_.path() + ": the given passphrase does not open it");
        auto slot = free_slot();
        if (!slot) return proto::unexpected(slot.error());
        if (opts_.dry_run) {
            out_.summary = "would enrol: " + std::string(vol_.type_name()) + " " + vol_.uuid() + ", agent key in " +
                           slot_text(*slot) + ", record in " + store_->describe(vol_) + recovery_plan();
            return Done{};
        }
        const proto::SeedGeneration next{seed, 1, *slot, {}};
        auto key = key_for(next);
        if (!key) return proto::unexpected(key.error());
        auto installed = install(next, passphrase, **key, "enroll");
        if (!installed) return proto::unexpected(installed.error());
        auto done = save_with(*installed, std::nullopt, std::nullopt, "enroll: record names the new keyslot");
        if (!done) return done;
        out_.summary = "enrolled: " + gen_text(next.generation) + " in " + slot_text(next.keyslot) + ", record in " +
                       store_->describe(vol_);
        return Done{};
    }

    LuksStatus rotate(const std::vector<unsigned char>& seed) {
        if (!rec_.current)
            return luks_error(LuksErrc::not_enrolled, vol_.path() + " is not enrolled (no crypt-agent record in " +
                                                          store_->describe(vol_) + "); run enroll first");
        if (rec_.profile != card_.profile_id())
            return luks_error(LuksErrc::card, vol_.path() + " was enrolled for card profile '" + rec_.profile +
                                                  "', not '" + card_.profile_id() + "'");
        const proto::SeedGeneration cur = *rec_.current;
        auto slot = free_slot();
        if (!slot) return proto::unexpected(slot.error());
        if (opts_.dry_run) {
            out_.summary = "would rotate " + gen_text(cur.generation) + " (" + slot_text(cur.keyslot) + ") to " +
                           gen_text(cur.generation + 1) + " (" + slot_text(*slot) + ")" + recovery_plan();
            return Done{};
        }
        progress_.step(vol_.path(), "checking the current key");
        auto old_key = key_for(cur);
        if (!old_key) return proto::unexpected(old_key.error());
        if (!vol_.opens(cur.keyslot, **old_key))
            return luks_error(LuksErrc::wrong_key, vol_.path() + ": the card's key for " + gen_text(cur.generation) +
                                                       " does not open " + slot_text(cur.keyslot) +
                                                       " (another card, or a header restored from a backup?); "
                                                       "left unchanged");
        const proto::SeedGeneration next{seed, cur.generation + 1, *slot, {}};
        auto new_key = key_for(next);
        if (!new_key) return proto::unexpected(new_key.error());

        auto installed = install(next, **old_key, **new_key, "rotate");
        if (!installed) return proto::unexpected(installed.error());
        progress_.step(vol_.path(), "recording the new key");
        auto st = save_with(*installed, std::nullopt, cur, "rotate: record names the new keyslot");
        if (!st) return st;
        progress_.step(vol_.path(), "removing the old key");
        st = destroy(cur.keyslot, "rotate: old keyslot removed");
        if (!st)
            return luks_error(st.error().code,
                              st.error().message + "; the old key still opens it until the next rotate removes it");
        st = save_with(*installed, std::nullopt, std::nullopt, "rotate: record cleaned");
        if (!st) return st;
        out_.summary = "rotated " + gen_text(cur.generation) + " -> " + gen_text(next.generation) + ", " +
                       slot_text(cur.keyslot) + " -> " + slot_text(next.keyslot);
        return Done{};
    }

private:
    // Steps 1 to 3: record the intent, add the keyslot, prove it opens.  On a
    // failure the intent is rolled back so the volume stays as it was.
    // Returns `next` with the new keyslot's salt filled in.
    LuksResult<proto::SeedGeneration> install(proto::SeedGeneration next, const proto::Secret& unlock,
                                              const proto::Secret& new_key, const std::string& what) {
        progress_.step(vol_.path(), "recording the intent");
        auto st = save_with(rec_.current, next, std::nullopt, (what + ": record intent").c_str());
        if (!st) return proto::unexpected(st.error());
        progress_.step(vol_.path(), "adding " + slot_text(next.keyslot));
        st = vol_.add_cheap_keyslot(next.keyslot, unlock, new_key);
        if (!st) {
            drop_pending_after_failure();
            return proto::unexpected(st.error());
        }
        fault::after_step("keyslot added");
        progress_.step(vol_.path(), "verifying " + slot_text(next.keyslot));
        if (!vol_.opens(next.keyslot, new_key)) {
            (void)vol_.destroy_keyslot(next.keyslot);
            drop_pending_after_failure();
            return luks_error(LuksErrc::wrong_key, vol_.path() + ": the new " + slot_text(next.keyslot) +
                                                       " does not open with its key; removed it, volume unchanged");
        }
        fault::after_step("new keyslot verified");
        next.keyslot_salt = vol_.keyslot_salt(next.keyslot).value_or("");
        return next;
    }

    void drop_pending_after_failure() {
        // Best effort: if this write fails too, the next run's recovery drops it.
        (void)save_with(rec_.current, std::nullopt, std::nullopt, "rollback: intent dropped");
    }

    // A pending generation whose keyslot exists and opens with its key was
    // added completely (libcryptsetup writes the key material before the header
    // lists the slot), so it is rolled forward: it becomes current, and the old
    // current becomes previous, retired by finish_previous().  Rolling forward
    // rather than back means recovery never destroys a slot it cannot identify.
    LuksStatus roll_forward_pending() {
        proto::SeedGeneration g = *rec_.pending;
        if (vol_.keyslot_active(g.keyslot)) {
            auto key = key_for(g);
            if (!key) return proto::unexpected(key.error());
            if (vol_.opens(g.keyslot, **key)) {
                progress_.step(vol_.path(), "finishing an interrupted run");
                g.keyslot_salt = vol_.keyslot_salt(g.keyslot).value_or("");
                out_.notes.push_back("finished an interrupted run: " + slot_text(g.keyslot) + " (" +
                                     gen_text(g.generation) + ") is now current");
                return save_with(g, std::nullopt, rec_.current, "recover: pending rolled forward");
            }
            out_.notes.push_back(slot_text(g.keyslot) +
                                 " was named as pending but does not open with "
                                 "the card's key: not ours, left alone");
        }
        return save_with(rec_.current, std::nullopt, rec_.previous, "recover: intent dropped");
    }

    // The previous generation's keyslot is ours if it still carries the salt we
    // recorded (it may be half-destroyed: key material wiped, header not yet
    // rewritten) or if its key opens it.  Anything else is someone else's slot
    // that took the number after our destroy finished.
    [[nodiscard]] bool is_our_previous_slot(const proto::SeedGeneration& g) {
        if (!g.keyslot_salt.empty()) {
            const auto salt = vol_.keyslot_salt(g.keyslot);
            if (salt) return *salt == g.keyslot_salt;
        }
        auto key = key_for(g);
        return key && vol_.opens(g.keyslot, **key);
    }

    LuksStatus finish_previous() {
        const proto::SeedGeneration g = *rec_.previous;
        if (vol_.keyslot_active(g.keyslot)) {
            // Destroy the old key only once the new one is proven to open.
            if (!rec_.current)
                return luks_error(LuksErrc::internal, vol_.path() +
                                                          ": record names a previous generation "
                                                          "but no current one; left unchanged");
            auto cur_key = key_for(*rec_.current);
            if (!cur_key) return proto::unexpected(cur_key.error());
            if (!vol_.opens(rec_.current->keyslot, **cur_key))
                return luks_error(LuksErrc::wrong_key,
                                  vol_.path() + ": the current " + slot_text(rec_.current->keyslot) +
                                      " does not open with the card's key; kept the previous " + slot_text(g.keyslot));
            if (is_our_previous_slot(g)) {
                progress_.step(vol_.path(), "finishing an interrupted rotation");
                auto st = destroy(g.keyslot, "recover: previous keyslot removed");
                if (!st) return st;
                out_.notes.push_back("finished an interrupted rotation: removed old " + slot_text(g.keyslot) + " (" +
                                     gen_text(g.generation) + ")");
            } else {
                out_.notes.push_back(slot_text(g.keyslot) +
                                     " was named as previous but is not the agent's "
                                     "keyslot any more: left alone");
            }
        }
        return save_with(rec_.current, std::nullopt, std::nullopt, "recover: previous dropped");
    }

    // Cheap keyslots that no record names but one of this run's derived keys
    // opens: left by a lost record write.  Proof by opening, never by guessing.
    LuksStatus sweep_orphans() {
        if (keys_.empty()) {
            if (!rec_.current) return Done{};
            auto key = key_for(*rec_.current);  // also needed by the rotation that follows
            if (!key) return proto::unexpected(key.error());
        }
        for (int slot : vol_.active_keyslots()) {
            if (rec_.names_keyslot(slot) || !vol_.is_cheap_keyslot(slot)) continue;
            for (const auto& [seed, key] : keys_) {
                if (!vol_.opens(slot, key)) continue;
                auto st = destroy(slot, "recover: orphan keyslot removed");
                if (!st) return st;
                out_.notes.push_back("removed orphan " + slot_text(slot) + " (an agent key no record names)");
                break;
            }
        }
        return Done{};
    }

    LuksResult<int> free_slot() const {
        auto slot = vol_.first_free_keyslot();
        if (!slot)
            return luks_error(LuksErrc::no_free_keyslot,
                              vol_.path() + ": all " + std::to_string(vol_.keyslot_max()) +
                                  " keyslots are in use; free one with cryptsetup luksKillSlot");
        return *slot;
    }

    // The derived key of one generation, memoised per seed for this volume.
    LuksResult<const proto::Secret*> key_for(const proto::SeedGeneration& g) {
        auto it = keys_.find(g.seed);
        if (it != keys_.end()) return &it->second;
        auto response = card_.response(g.seed);
        if (!response) return proto::unexpected(response.error());
        auto key = smartcard::derive_volume_key(**response, g.seed, vol_.uuid());
        return &keys_.emplace(g.seed, std::move(key)).first->second;
    }

    LuksStatus save_with(std::optional<proto::SeedGeneration> current, std::optional<proto::SeedGeneration> pending,
                         std::optional<proto::SeedGeneration> previous, const char* step) {
        proto::SeedRecord next{rec_.profile, std::move(current), std::move(pending), std::move(previous), rec_.key_uri};
        auto st = store_->save(vol_, next);
        if (!st) return st;
        rec_ = std::move(next);
        fault::after_step(step);
        return Done{};
    }

    LuksStatus destroy(int slot, const char* step) {
        // The last keyslot would leave nothing that opens the volume.
        if (vol_.active_keyslots().size() <= 1)
            return luks_error(LuksErrc::internal,
                              vol_.path() + ": refusing to remove " + slot_text(slot) + ", the last keyslot");
        auto st = vol_.destroy_keyslot(slot);
        if (!st) return st;
        fault::after_step(step);
        return Done{};
    }

    Volume vol_;
    ResponseCache& card_;
    const RunOptions& opts_;
    Progress& progress_;
    VolumeOutcome& out_;
    std::unique_ptr<SeedStore> store_;
    proto::SeedRecord rec_;
    bool enrolled_ = false;
    std::map<std::vector<unsigned char>, proto::Secret> keys_;
};

// The seeds named by the volumes' records (unreadable volumes are skipped
// here; their own job reports why).
std::vector<std::vector<unsigned char>> recorded_seeds(const std::vector<std::string>& volumes,
                                                       const StoreOptions& store) {
    std::vector<std::vector<unsigned char>> seeds;
    for (const auto& path : volumes) {
        auto found = candidates_for_volume(path, store);
        if (!found) continue;
        for (auto& g : found->generations) seeds.push_back(std::move(g.seed));
    }
    return seeds;
}

template <class Work>
VolumeOutcome run_one(const std::string& path, ResponseCache& card, const RunOptions& opts, Progress& progress,
                      Work&& work) {
    VolumeOutcome out;
    out.path = path;
    auto fail = [&out, &path](const LuksError& e) {
        out.ok = false;
        out.code = e.code;
        // The summary line already starts with the path.
        const std::string prefix = path + ": ";
        out.summary = "failed: " + (e.message.rfind(prefix, 0) == 0 ? e.message.substr(prefix.size()) : e.message);
    };
    try {
        progress.step(path, "opening");
        auto vol = Volume::open(path);
        if (!vol) {
            fail(vol.error());
            return out;
        }
        VolumeJob job(std::move(*vol), card, opts, progress, out);
        auto st = job.load();
        if (st && !opts.dry_run) st = job.recover();
        if (st) st = work(job);
        if (!st) {
            fail(st.error());
            return out;
        }
        out.ok = true;
    } catch (const std::exception& e) {
        // Only resource exhaustion gets here (OpenSSL, allocation).
        fail(LuksError{LuksErrc::internal, path + ": " + e.what()});
    }
    return out;
}

}  // namespace

std::vector<VolumeOutcome> enroll(const std::vector<std::string>& volumes,
                                  const std::vector<proto::Secret>& passphrases, ResponseCache& card,
                                  const RunOptions& opts, Progress& progress) {
    std::vector<VolumeOutcome> outcomes;
    const std::vector<unsigned char> seed = card.new_seed({});
    if (!opts.dry_run) {
        // Leftovers of an interrupted enrolment are recovered with their own seeds.
        auto seeds = recorded_seeds(volumes, opts.store);
        card.prefetch(seeds, false);
        card.prefetch({seed}, true);  // a card that answers twice the same way, or none
    }
    for (std::size_t i = 0; i < volumes.size(); ++i) {
        const proto::Secret& pass = passphrases.size() == 1 ? passphrases[0] : passphrases.at(i);
        outcomes.push_back(run_one(volumes[i], card, opts, progress,
                                   [&](VolumeJob& job) -> LuksStatus { return job.enroll(pass, seed); }));
    }
    return outcomes;
}

std::vector<VolumeOutcome> rotate(const std::vector<std::string>& volumes, ResponseCache& card, const RunOptions& opts,
                                  Progress& progress) {
    std::vector<VolumeOutcome> outcomes;
    auto seeds = recorded_seeds(volumes, opts.store);
    const std::vector<unsigned char> seed = opts.new_seed.empty()
                                                ? card.new_seed(seeds.empty() ? std::vector<unsigned char>{}
                                                                              : seeds.front())
                                                : opts.new_seed;
    if (!opts.dry_run) {
        // Every seed the run may need (recovery, the current keys, the new
        // seed) in one card operation: one PIN prompt, one session.
        seeds.push_back(seed);
        card.prefetch(seeds, false);
    }
    outcomes.reserve(volumes.size());
    for (const std::string& path : volumes)
        outcomes.push_back(run_one(path, card, opts, progress, [&](VolumeJob& job) { return job.rotate(seed); }));
    return outcomes;
}

LuksResult<VolumeSeeds> candidates_for_volume(const std::string& path, const StoreOptions& opts) {
    auto vol = Volume::open(path);
    if (!vol) return proto::unexpected(vol.error());
    auto store = store_for(*vol, opts);
    auto loaded = store->load(*vol);
    if (!loaded) return proto::unexpected(loaded.error());
    VolumeSeeds out;
    out.uuid = vol->uuid();
    if (loaded->record) {
        out.profile = loaded->record->profile;
        out.generations = loaded->record->generations();
    }
    return out;
}

}  // namespace ca::agent::luks
