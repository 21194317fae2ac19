// SPDX-License-Identifier: MIT
// systemd's own "cryptsetup" keyring entry: harvest what a person typed into it, push the
// cache's plausible candidates into it (push-systemd), clear it once our copy is stored
// (systemd-entry=clear), and remember when each value was there (the policy learns from it).
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <utility>

#include "agent/cache/boot_cache.hpp"
#include "agent/cache/entry_history.hpp"
#include "agent/config/options.hpp"

namespace ca::agent {

class SystemdEntry {
public:
    SystemdEntry(const GlobalOptions& o, BootCache& cache) : o_(o), cache_(cache) {}

    // Takes what is in the entry into the cache (saved at once when new), then clears the
    // entry when configured and our copy is fully stored.
    void harvest();
    // The same, at most once per 50 ms unless `force`: in a storm of first questions a push
    // also wakes us (the directory is touched, the answered question goes away).
    void harvest_now_or_soon(bool force, std::uint64_t now_us);
    // push-systemd: the candidates plausible for every volume (no Id restriction, rejected by
    // no Id) into the entry, then a touch of the ask directory.
    void push();
    // Whether some Id rejected a candidate (answer/ledger, set by the composition root).
    void set_rejected_anywhere(std::function<bool(std::uint64_t)> f) { rejected_anywhere_ = std::move(f); }

    [[nodiscard]] EntryHistory history() const noexcept { return {first_seen_, last_arrived_}; }

private:
    const GlobalOptions& o_;
    BootCache& cache_;
    std::unordered_map<std::uint64_t, std::uint64_t> first_seen_;  // hash -> first seen there (boottime)
    std::unordered_map<std::uint64_t, std::uint64_t>
        last_arrived_;  // hash -> when it last arrived there, kept when it goes
    std::uint64_t last_harvest_us_ = 0;
    std::uint64_t pushed_hash_ = 0;  // what we last pushed
    std::function<bool(std::uint64_t)> rejected_anywhere_;
};

}  // namespace ca::agent
