// SPDX-License-Identifier: MIT
// Which cached candidates may answer a question, in which order, and what a retry teaches.
// Pure: no I/O, no clock, no logging (the flow logs what these return), unit-tested in
// tests/unit/test_policy.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "agent/answer/ledger.hpp"
#include "agent/cache/entry_history.hpp"
#include "proto/cache_codec.hpp"

namespace ca::agent {

// The candidates of `cache` (hashes[i] is candidates[i]'s identity) that may be offered to a
// question with Id `id`: not rejected by that Id, not already sent to this question, allowed
// by their Id patterns.  Most likely first: a key made for exactly this Id, then one that
// opened some volume, then the newest (a passphrase just typed after a typo).
[[nodiscard]] std::vector<std::size_t> eligible_ranked(const proto::CachePayload& cache,
                                                       std::span<const std::uint64_t> hashes, const IdState& ids,
                                                       std::span<const std::uint64_t> sent_to_question,
                                                       std::string_view id);

struct LearnSettings {
    bool harvest = true;        // the agent reads systemd's entry
    bool push_systemd = false;  // the agent pushes into it
};

struct Learnt {
    std::size_t rejected = 0;  // candidates newly never to be offered to this Id
    std::size_t excused = 0;   // candidates offered once more (the asker took systemd's entry)
};

// An AcceptCached=0 question with this Id: what it was given last failed.  Moves `ids.sent`
// into rejected (or excused, once), marks what systemd's entry gave it as rejected, and clears
// `opened` on candidates that were taken for a success.  `cache` may be null.
Learnt learn_from_retry(IdState& ids, proto::CachePayload* cache, std::span<const std::uint64_t> hashes,
                        const EntryHistory& entry, LearnSettings settings);

}  // namespace ca::agent
