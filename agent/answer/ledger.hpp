// SPDX-License-Identifier: MIT
// What was sent to each question Id and what each rejected: pure bookkeeping, no I/O, no
// logging.  Keyed by proto::id_hash, so it is bounded whatever the Ids' length, and the
// number of Ids is capped (prune).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/answer/hash_set.hpp"
#include "proto/cache_codec.hpp"

namespace ca::agent {

struct IdState {
    bool seen = false;              // a question with this Id was seen
    std::uint64_t last_ask_us = 0;  // CLOCK_BOOTTIME of its latest question
    HashSet sent;                   // candidate hashes sent to this Id, not yet judged
    HashSet rejected;               // never offer these to this Id again
    HashSet excused;                // sent, then not judged once (the asker took systemd's entry)
    bool asked_sources = false;     // candidate sources were asked for this Id
};

class Ledger {
public:
    [[nodiscard]] IdState& of(std::string_view id) { return by_hash(proto::id_hash(id)); }
    [[nodiscard]] IdState& by_hash(std::uint64_t id_hash) { return ids_[id_hash]; }
    // Whether any Id rejected this candidate.
    [[nodiscard]] bool rejected_anywhere(std::uint64_t candidate) const;
    // A boot has a handful of Ids; a long-running agent asked by many distinct Ids must not
    // grow without bound.  Past kHigh Ids, keeps the kKeep most recently asking (with an open
    // question or not: what they learnt matters least for the oldest).  Returns how many went.
    static constexpr std::size_t kHigh = 2048, kKeep = 1024;
    std::size_t prune();

    // What an earlier instance learnt about one candidate (from the cache it handed over).
    void restore(std::uint64_t candidate, const std::vector<std::uint64_t>& rejected_by,
                 const std::vector<std::uint64_t>& sent_to);
    // Writes what this boot learnt into each candidate's rejected_by and sent_to (capped at
    // proto::kCacheMaxIdHashes), for the next instance.
    void annotate(proto::CachePayload& cache, std::span<const std::uint64_t> hashes) const;

    [[nodiscard]] const std::unordered_map<std::uint64_t, IdState>& all() const noexcept { return ids_; }

private:
    std::unordered_map<std::uint64_t, IdState> ids_;
};

}  // namespace ca::agent
