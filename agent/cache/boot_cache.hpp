// SPDX-License-Identifier: MIT
// The boot-scoped cache in memory: its candidates (each with a per-process identity hash),
// loading and merging what the store holds, coalesced saves, and its lifetime.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "agent/cache/store.hpp"
#include "agent/config/options.hpp"
#include "agent/log_once.hpp"
#include "proto/cache_codec.hpp"
#include "proto/secret.hpp"

namespace ca::agent {

class BootCache {
public:
    // What the owner does around the cache (completions going up):
    struct Hooks {
        // Restores what an earlier instance learnt about one candidate, per Id.
        std::function<void(std::uint64_t hash, const std::vector<std::uint64_t>& rejected_by,
                           const std::vector<std::uint64_t>& sent_to)>
            restore;
        // Fills each candidate's sent_to and rejected_by before a save.
        std::function<void(proto::CachePayload&, std::span<const std::uint64_t> hashes)> annotate;
        std::function<void()> before_save;  // the sends recorded so far have returned
        std::function<void()> after_save;   // whether or not the save succeeded
    };

    BootCache(boost::asio::io_context& io, const GlobalOptions& o);
    BootCache(const BootCache&) = delete;
    BootCache& operator=(const BootCache&) = delete;
    void set_hooks(Hooks h) { hooks_ = std::move(h); }

    [[nodiscard]] std::optional<std::string> check_dir() const { return store_.check_dir(); }

    // Reads `finished` and the store, and merges it into what is held (keeping what was learnt).
    void load();
    // `finish` ran this boot (the marker in the cache directory): forget everything.
    [[nodiscard]] bool finished() const noexcept { return finished_; }
    void forget_if_finished();

    [[nodiscard]] bool present() const noexcept { return cache_.has_value(); }
    [[nodiscard]] proto::CachePayload* payload() noexcept { return cache_ ? &*cache_ : nullptr; }
    [[nodiscard]] std::span<const std::uint64_t> hashes() const noexcept { return hashes_; }
    [[nodiscard]] std::size_t size() const noexcept { return cache_ ? cache_->candidates.size() : 0; }
    [[nodiscard]] std::optional<std::size_t> index_of(std::uint64_t h) const noexcept;
    [[nodiscard]] const proto::Secret* value_of(std::uint64_t h) const noexcept;
    // A candidate's identity in this process (SipHash under a random key; never logged).
    [[nodiscard]] std::uint64_t hash_of(const proto::Secret& s) const noexcept;
    // Keyed 4-hex fingerprints for logs: tell candidates apart, reveal nothing.
    [[nodiscard]] std::string fingerprint(const proto::Secret& s) const { return fp_->fingerprint(s); }

    // Adds a candidate (or refreshes a typed one).  Returns true if it is new.
    bool add(proto::Secret value, proto::Origin origin, std::vector<std::string> patterns);
    // A card's response kept for this boot (see sources/source.hpp): saved at once.
    void put_card_response(proto::CardResponse::Kind kind, const std::vector<unsigned char>& seed,
                           const proto::Secret& response);
    [[nodiscard]] std::optional<proto::Secret> card_response(const std::vector<unsigned char>& seed) const;
    [[nodiscard]] bool has_next_card_response() const;

    // Something learnt changed: save within 20 ms (a storm of answers costs one write).
    void changed();
    void save_now();
    [[nodiscard]] bool dirty() const noexcept { return dirty_; }
    // The last save left candidates out (too large): systemd's entry must be kept.
    [[nodiscard]] bool left_out() const noexcept { return left_out_; }
    void stop();

private:
    void ensure();
    void reset();
    void arm_expiry();
    void expire();

    const GlobalOptions& o_;
    CacheStore store_;
    std::uint64_t k0_ = 0, k1_ = 0;  // per-process key for candidate identity (never logged)
    std::unique_ptr<proto::FingerprintKey> fp_;
    std::optional<proto::CachePayload> cache_;
    std::vector<std::uint64_t> hashes_;  // parallel to cache_->candidates
    bool dirty_ = false;
    bool left_out_ = false;
    bool finished_ = false;
    bool stopping_ = false;
    LogOnce fit_warned_;
    LogOnce file_warned_;
    LogOnce finished_logged_;
    boost::asio::steady_timer save_timer_;
    bool save_armed_ = false;
    boost::asio::steady_timer expiry_timer_;
    Hooks hooks_;
};

}  // namespace ca::agent
