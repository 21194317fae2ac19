// SPDX-License-Identifier: MIT
#include "agent/cache/systemd_entry.hpp"

#include <cstring>
#include <vector>

#include "agent/cache/keyring.hpp"
#include "agent/cli/commands.hpp"
#include "agent/clock.hpp"
#include "agent/log.hpp"

namespace ca::agent {

namespace {

std::vector<proto::Secret> split_nul_list(const proto::Secret& s) {
    std::vector<proto::Secret> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s.data()[i] == 0) {
            if (i > start) out.push_back(proto::Secret::copy_of(s.bytes().subspan(start, i - start)));
            start = i + 1;
        }
    }
    return out;
}

}  // namespace

void SystemdEntry::harvest_now_or_soon(bool force, std::uint64_t now_us) {
    if (!force && now_us - last_harvest_us_ < 50000) return;
    last_harvest_us_ = now_us;
    harvest();
}

void SystemdEntry::harvest() {
    if (!o_.harvest || cache_.finished()) return;
    auto id = keyring::find(o_.keyring, o_.systemd_key_name);
    if (!id) {
        first_seen_.clear();  // a later push of the same value is a new push
        return;               // absent, the common case
    }
    auto payload = keyring::read(*id);
    if (!payload) {
        CA_LOG(warning) << "cannot read systemd's '" << o_.systemd_key_name
                        << "' key: " << std::strerror(payload.error())
                        << " (the agent's session keyring must link the user keyring: KeyringMode=shared)";
        return;
    }
    const std::size_t before = cache_.size();
    const auto now = boottime_us();
    for (auto& s : split_nul_list(*payload)) {
        // When each value first appeared in systemd's entry: systemd tries the entry
        // silently before a volume's first question, and it holds what was just typed.
        // And when it last arrived there, kept after the entry goes (we clear it).
        const auto h = cache_.hash_of(s);
        if (first_seen_.try_emplace(h, now).second) last_arrived_[h] = now;
        cache_.add(std::move(s), proto::Origin::harvested, {});
    }
    const std::size_t added = cache_.size() - before;
    if (added != 0) {
        CA_LOG(notice) << "took " << added << " typed passphrase(s) from systemd's '" << o_.systemd_key_name
                       << "' keyring entry into the boot-scoped cache";
        cache_.save_now();
    }
    if (o_.systemd_entry == SystemdEntryPolicy::clear && !o_.push_systemd && !cache_.dirty() && !cache_.left_out()) {
        // Only once our own copy is stored (a failed or partial save leaves systemd's entry
        // alone, or the typed passphrase would live only in our memory): systemd tries this entry silently before the first
        // question of every other volume, which with different passphrases or per-volume keys
        // burns a try and a slow PBKDF each time.  We answer those volumes ourselves.
        auto r = keyring::remove(o_.keyring, o_.systemd_key_name);
        if (r && *r) CA_LOG(info) << "cleared systemd's '" << o_.systemd_key_name << "' entry (systemd-entry=clear)";
    }
}

void SystemdEntry::push() {
    // Askers already waiting with AcceptCached=1 re-read the keyring on the touch that
    // follows, which closes the race where they started before us.
    auto* cache = cache_.payload();
    if (!o_.push_systemd || cache == nullptr || cache_.finished()) return;
    const auto hashes = cache_.hashes();
    std::vector<const proto::Secret*> plausible;
    for (std::size_t i = 0; i < cache->candidates.size(); ++i) {
        const auto& c = cache->candidates[i];
        if (!c.patterns.empty() || (rejected_anywhere_ && rejected_anywhere_(hashes[i]))) continue;
        plausible.push_back(&c.value);
    }
    if (plausible.empty()) return;
    std::size_t total = 0;
    for (const auto* p : plausible) total += p->size() + 1;
    proto::Secret list(total - 1);
    std::size_t off = 0;
    for (const auto* p : plausible) {
        if (off != 0) list.data()[off++] = 0;
        std::memcpy(list.data() + off, p->data(), p->size());
        off += p->size();
    }
    if (pushed_hash_ == cache_.hash_of(list)) return;  // nothing new to tell
    // systemd keeps its own entry for 150 s; so do we, and push again when the cache changes.
    auto r = keyring::put(o_.keyring, o_.systemd_key_name, list.bytes(), 150);
    if (!r) {
        CA_LOG(warning) << "cannot push into systemd's '" << o_.systemd_key_name
                        << "' entry: " << std::strerror(r.error());
        return;
    }
    pushed_hash_ = cache_.hash_of(list);
    first_seen_.clear();
    for (const auto* p : plausible) first_seen_.try_emplace(cache_.hash_of(*p), boottime_us());
    touch_ask_dir(o_);
    CA_LOG(info) << "pushed " << plausible.size() << " candidate(s) into systemd's '" << o_.systemd_key_name
                 << "' entry (push-systemd)";
}

}  // namespace ca::agent
