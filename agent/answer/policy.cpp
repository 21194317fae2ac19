// SPDX-License-Identifier: MIT
#include "agent/answer/policy.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "proto/glob.hpp"

namespace ca::agent {

namespace {

bool is_literal(const std::string& pattern) { return pattern.find_first_of("*?[\\") == std::string::npos; }

std::optional<std::size_t> index_of(std::span<const std::uint64_t> hashes, std::uint64_t h) {
    for (std::size_t i = 0; i < hashes.size(); ++i)
        if (hashes[i] == h) return i;
    return std::nullopt;
}

}  // namespace

std::vector<std::size_t> eligible_ranked(const proto::CachePayload& cache, std::span<const std::uint64_t> hashes,
                                         const IdState& ids, std::span<const std::uint64_t> sent_to_question,
                                         std::string_view id) {
    const std::string ids_str(id);
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < cache.candidates.size(); ++i) {
        const auto& c = cache.candidates[i];
        const auto h = hashes[i];
        if (ids.rejected.count(h)) continue;
        if (std::find(sent_to_question.begin(), sent_to_question.end(), h) != sent_to_question.end()) continue;
        if (!c.patterns.empty() && std::none_of(c.patterns.begin(), c.patterns.end(),
                                                [&](const std::string& p) { return proto::glob_match(p, ids_str); }))
            continue;
        out.push_back(i);
    }
    auto rank = [&](std::size_t i) {
        const auto& c = cache.candidates[i];
        const bool exact = std::any_of(c.patterns.begin(), c.patterns.end(),
                                       [&](const std::string& p) { return is_literal(p) && p == ids_str; });
        return std::make_tuple(exact, c.opened, c.added_us);
    };
    std::stable_sort(out.begin(), out.end(), [&](std::size_t a, std::size_t b) { return rank(a) > rank(b); });
    return out;
}

Learnt learn_from_retry(IdState& ids, proto::CachePayload* cache, std::span<const std::uint64_t> hashes,
                        const EntryHistory& entry, LearnSettings settings) {
    Learnt out;
    // systemd's asker, asked with AcceptCached=1, watches its keyring entry as well as its
    // socket, and takes the entry when another volume's asker pushes into it first: then
    // what we sent was never read, and the failure was the other volume's passphrase.
    // Whatever an asker receives it pushes into the entry, so when none of what we sent
    // arrived there but another value did after this Id asked, what we sent was most
    // likely not tried: it is offered once more (once only, so a wrong key cannot loop).
    const auto pushed_since_ask = [&](std::uint64_t h) {
        auto it = entry.last_arrived.find(h);
        return it != entry.last_arrived.end() && it->second >= ids.last_ask_us;
    };
    const bool took_entry = ids.seen && settings.harvest && !settings.push_systemd &&
                            std::none_of(ids.sent.begin(), ids.sent.end(), pushed_since_ask) &&
                            std::any_of(entry.last_arrived.begin(), entry.last_arrived.end(),
                                        [&](const auto& e) { return pushed_since_ask(e.first); });
    for (auto h : ids.sent) {
        if (took_entry && ids.excused.insert(h).second) ++out.excused;
        else if (ids.rejected.insert(h).second) ++out.rejected;
        // It was taken for a success when the question went away; it was not one.
        if (auto i = index_of(hashes, h); i && cache != nullptr) cache->candidates[*i].opened = false;
    }
    ids.sent.clear();
    if (cache == nullptr) return out;
    for (std::size_t i = 0; i < cache->candidates.size(); ++i) {
        const auto& c = cache->candidates[i];
        // A first question already marked AcceptCached=0: systemd silently tried its keyring
        // entry (which holds what was typed or harvested) and it failed.  On a later retry, what
        // was typed since this Id last asked is most likely what it was just given.
        const auto seen = entry.first_seen.find(hashes[i]);
        const bool typed = c.origin == proto::Origin::harvested || seen != entry.first_seen.end();
        const std::uint64_t when = seen != entry.first_seen.end() ? seen->second : c.added_us;
        const bool tried = !ids.seen ? typed : (typed && when > ids.last_ask_us);
        if (tried && ids.rejected.insert(hashes[i]).second) ++out.rejected;
    }
    return out;
}

}  // namespace ca::agent
