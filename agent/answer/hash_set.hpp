// SPDX-License-Identifier: MIT
// A set of a few 64-bit candidate hashes, kept as a sorted vector.  One Id is sent or
// rejected at most the cache's 64 candidates and usually one: a hash set's bucket array
// and node per element cost more than the search (and a storm of distinct Ids made one
// of them per question).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace ca::agent {

class HashSet {
public:
    using const_iterator = std::vector<std::uint64_t>::const_iterator;

    [[nodiscard]] std::size_t count(std::uint64_t h) const noexcept {
        return std::binary_search(v_.begin(), v_.end(), h) ? 1 : 0;
    }
    // As std::set::insert: where it is, and whether it was added.
    std::pair<const_iterator, bool> insert(std::uint64_t h) {
        auto it = std::lower_bound(v_.begin(), v_.end(), h);
        if (it != v_.end() && *it == h) return {it, false};
        return {v_.insert(it, h), true};
    }
    std::size_t erase(std::uint64_t h) noexcept {
        auto it = std::lower_bound(v_.begin(), v_.end(), h);
        if (it == v_.end() || *it != h) return 0;
        v_.erase(it);
        return 1;
    }
    void clear() noexcept { v_.clear(); }
    [[nodiscard]] bool empty() const noexcept { return v_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return v_.size(); }
    [[nodiscard]] const_iterator begin() const noexcept { return v_.begin(); }
    [[nodiscard]] const_iterator end() const noexcept { return v_.end(); }

private:
    std::vector<std::uint64_t> v_;
};

}  // namespace ca::agent
