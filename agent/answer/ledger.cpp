// SPDX-License-Identifier: MIT
#include "agent/answer/ledger.hpp"

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace ca::agent {

bool Ledger::rejected_anywhere(std::uint64_t candidate) const {
    return std::any_of(ids_.begin(), ids_.end(),
                       [candidate](const auto& kv) { return kv.second.rejected.count(candidate) != 0; });
}

std::size_t Ledger::prune() {
    if (ids_.size() < kHigh) return 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> by_age;
    by_age.reserve(ids_.size());
    for (const auto& [id, st] : ids_) by_age.emplace_back(st.last_ask_us, id);
    const std::size_t drop = by_age.size() - kKeep;
    std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(drop), by_age.end());
    for (std::size_t i = 0; i < drop; ++i) ids_.erase(by_age[i].second);
    return drop;
}

void Ledger::restore(std::uint64_t candidate, const std::vector<std::uint64_t>& rejected_by,
                     const std::vector<std::uint64_t>& sent_to) {
    for (auto id : rejected_by) ids_[id].rejected.insert(candidate);
    for (auto id : sent_to) {
        auto& st = ids_[id];
        if (!st.rejected.count(candidate)) st.sent.insert(candidate);
        st.seen = true;
    }
}

void Ledger::annotate(proto::CachePayload& cache, std::span<const std::uint64_t> hashes) const {
    for (const auto& [id, st] : ids_) {
        for (std::size_t i = 0; i < cache.candidates.size(); ++i) {
            auto& c = cache.candidates[i];
            const auto h = hashes[i];
            if (st.rejected.count(h) && c.rejected_by.size() < proto::kCacheMaxIdHashes) c.rejected_by.push_back(id);
            else if (st.sent.count(h) && c.sent_to.size() < proto::kCacheMaxIdHashes) c.sent_to.push_back(id);
        }
    }
}

}  // namespace ca::agent
