// SPDX-License-Identifier: MIT
#include "agent/cache/boot_cache.hpp"

#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <span>
#include <stdexcept>

#include "agent/clock.hpp"
#include "agent/log.hpp"

namespace ca::agent {

BootCache::BootCache(boost::asio::io_context& io, const GlobalOptions& o)
    : o_(o), store_(o), save_timer_(io), expiry_timer_(io) {
    unsigned char key[32];
    if (getrandom(key, sizeof key, 0) != static_cast<ssize_t>(sizeof key)) throw std::runtime_error("getrandom failed");
    std::memcpy(&k0_, key, 8);
    std::memcpy(&k1_, key + 8, 8);
    fp_ = std::make_unique<proto::FingerprintKey>(std::span<const unsigned char, 16>(key + 16, 16));
    proto::wipe(key, sizeof key);
}

std::uint64_t BootCache::hash_of(const proto::Secret& s) const noexcept {
    return proto::siphash24(k0_, k1_, s.bytes());
}

std::optional<std::size_t> BootCache::index_of(std::uint64_t h) const noexcept {
    // At most kCacheMaxCandidates: a scan beats a map here.
    for (std::size_t i = 0; i < hashes_.size(); ++i)
        if (hashes_[i] == h) return i;
    return std::nullopt;
}

const proto::Secret* BootCache::value_of(std::uint64_t h) const noexcept {
    auto i = index_of(h);
    return i && cache_ ? &cache_->candidates[*i].value : nullptr;
}

void BootCache::reset() {
    cache_.reset();
    hashes_.clear();
}

void BootCache::stop() {
    stopping_ = true;
    save_timer_.cancel();
    expiry_timer_.cancel();
}

void BootCache::forget_if_finished() {
    if (!finished_) return;
    if (finished_logged_.first())
        CA_LOG(info) << "finish ran this boot; the cache is gone, leaving questions to other agents";
    reset();
}

void BootCache::load() {
    finished_ = store_.finished();  // `finish` touches the ask directory, which brings us here
    if (finished_) {
        if (cache_) {
            reset();
            CA_LOG(notice) << "finish ran: forgetting the cache";
        }
        return;
    }
    auto r = store_.load();
    if (!r.warning.empty()) CA_LOG(warning) << "cache: " << r.warning;
    if (r.expired) CA_LOG(notice) << "the stored cache had reached its lifetime and was removed";
    if (!r.payload) {
        if (cache_ && !dirty_) {
            // Someone flushed the store (cache flush); follow it.
            CA_LOG(notice) << "the stored cache was removed; forgetting it";
            reset();
        }
        return;
    }
    const bool first = !cache_;
    static const std::vector<std::uint64_t> none;
    // Merge: the stored copy may come from `cache put` or the previous phase; keep our learning.
    if (!cache_) {
        cache_ = std::move(*r.payload);
        hashes_.clear();
        for (const auto& c : cache_->candidates) hashes_.push_back(hash_of(c.value));
    } else {
        cache_->expires_us = std::min(cache_->expires_us, r.payload->expires_us);
        for (auto& c : r.payload->candidates) {
            const auto h = hash_of(c.value);
            if (auto i = index_of(h)) {
                auto& mine = cache_->candidates[*i];
                mine.opened = mine.opened || c.opened;
                if (hooks_.restore) hooks_.restore(h, c.rejected_by, none);
                continue;
            }
            hashes_.push_back(h);
            cache_->candidates.push_back(std::move(c));
        }
        auto& mine = cache_->card_responses;
        for (auto& stored : r.payload->card_responses) {
            if (mine.size() < proto::kCacheMaxCardResponses &&
                std::none_of(mine.begin(), mine.end(),
                             [&](const auto& m) { return m.kind == stored.kind && m.seed == stored.seed; }))
                mine.push_back(std::move(stored));
        }
    }
    // Restore what earlier instances learnt, per Id.
    if (hooks_.restore)
        for (std::size_t i = 0; i < cache_->candidates.size(); ++i)
            hooks_.restore(hashes_[i], cache_->candidates[i].rejected_by, cache_->candidates[i].sent_to);
    if (first) {
        const auto now = boottime_us();
        const auto left = cache_->expires_us > now ? (cache_->expires_us - now) / 1000000 : 0;
        CA_LOG(info) << "cache loaded from the " << to_string(*r.from) << ": " << cache_->candidates.size()
                     << " candidate(s), " << left << " s left";
    }
    arm_expiry();
}

void BootCache::ensure() {
    if (cache_) return;
    cache_.emplace();
    cache_->created_us = boottime_us();
    cache_->expires_us = cache_->created_us + static_cast<std::uint64_t>(o_.cache_lifetime.count()) * 1000000ULL;
    hashes_.clear();
    arm_expiry();
}

bool BootCache::add(proto::Secret value, proto::Origin origin, std::vector<std::string> patterns) {
    if (value.empty() || value.contains_byte(0)) return false;
    ensure();
    const auto h = hash_of(value);
    if (auto i = index_of(h)) {
        auto& c = cache_->candidates[*i];
        if (c.origin == proto::Origin::harvested || origin == proto::Origin::harvested)
            c.added_us = boottime_us();  // typed again: most recent
        return false;
    }
    if (cache_->candidates.size() >= proto::kCacheMaxCandidates) {
        CA_LOG(warning) << "cache is full (" << proto::kCacheMaxCandidates << " candidates); dropping the oldest";
        cache_->candidates.erase(cache_->candidates.begin());
        hashes_.erase(hashes_.begin());
    }
    proto::CachedCandidate c;
    c.value = std::move(value);
    c.origin = origin;
    c.added_us = boottime_us();
    c.patterns = std::move(patterns);
    cache_->candidates.push_back(std::move(c));
    hashes_.push_back(h);
    changed();
    return true;
}

void BootCache::put_card_response(proto::CardResponse::Kind kind, const std::vector<unsigned char>& seed,
                                  const proto::Secret& response) {
    if (stopping_ || finished_ || seed.empty() || response.empty()) return;
    ensure();
    auto& list = cache_->card_responses;
    const bool known = std::any_of(list.begin(), list.end(),
                                   [&](const auto& r) { return r.kind == kind && r.seed == seed; });
    if (known) return;
    if (list.size() >= proto::kCacheMaxCardResponses) list.erase(list.begin());
    list.push_back({kind, seed, response.clone()});
    dirty_ = true;
    save_now();
}

std::optional<proto::Secret> BootCache::card_response(const std::vector<unsigned char>& seed) const {
    if (!cache_) return std::nullopt;
    for (const auto& r : cache_->card_responses)
        if (r.kind == proto::CardResponse::Kind::current && r.seed == seed) return r.response.clone();
    return std::nullopt;
}

bool BootCache::has_next_card_response() const {
    return cache_ && std::any_of(cache_->card_responses.begin(), cache_->card_responses.end(),
                                 [](const auto& r) { return r.kind == proto::CardResponse::Kind::next; });
}

void BootCache::changed() {
    dirty_ = true;
    if (save_armed_ || stopping_) return;
    save_armed_ = true;
    // Coalesce: a storm of answers costs one keyring write per 20 ms, not one per answer.
    save_timer_.expires_after(std::chrono::milliseconds(20));
    save_timer_.async_wait([this](const boost::system::error_code& ec) {
        save_armed_ = false;
        if (!ec && dirty_) save_now();
    });
}

void BootCache::save_now() {
    if (hooks_.before_save) hooks_.before_save();
    if (!cache_) {
        dirty_ = false;
        return;
    }
    // Record per candidate what this boot learnt, so the next instance knows it.
    for (auto& c : cache_->candidates) {
        c.sent_to.clear();
        c.rejected_by.clear();
    }
    if (hooks_.annotate) hooks_.annotate(*cache_, hashes_);
    proto::CacheFit fit;
    auto r = store_.save(*cache_, &fit);
    if (hooks_.after_save) hooks_.after_save();
    if (!r) {
        // Still dirty: nothing here is stored, so systemd's entry is not cleared (harvest).
        CA_LOG(warning) << "cache not stored: " << r.error();
        return;
    }
    dirty_ = false;
    left_out_ = fit.candidates_left_out != 0;
    if (!fit.everything() && fit_warned_.first())
        CA_LOG(warning) << "the cache outgrew its key (" << proto::kCachePayloadMax << " bytes): stored without "
                        << fit.candidates_left_out << " candidate(s), " << fit.rejections_left_out
                        << " rejection(s) and " << fit.sends_left_out
                        << " send(s) it learnt; the next instance may offer a key twice"
                        << (fit.candidates_left_out != 0 ? " (systemd's entry is kept)" : "");
    if (*r == StoreKind::file && file_warned_.first())
        CA_LOG(warning) << "the kernel keyring is unavailable; the cache is kept in " << store_.file_path()
                        << " (tmpfs fallback)";
}

void BootCache::arm_expiry() {
    if (!cache_) return;
    const auto now = boottime_us();
    const auto left = cache_->expires_us > now ? cache_->expires_us - now : 0;
    expiry_timer_.expires_after(std::chrono::microseconds(left));
    expiry_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !stopping_) expire();
    });
}

void BootCache::expire() {
    if (!cache_) return;
    if (boottime_us() < cache_->expires_us) {
        arm_expiry();
        return;
    }
    CA_LOG(notice) << "the boot-scoped cache reached its lifetime; flushing it";
    reset();
    dirty_ = false;
    auto r = store_.flush(false);
    if (!r.errors.empty()) CA_LOG(err) << "flushing the expired cache: " << r.errors;
}

}  // namespace ca::agent
