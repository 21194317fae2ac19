// SPDX-License-Identifier: MIT
#include "agent/daemon/server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include "agent/answer/describe.hpp"
#include "agent/daemon/notify.hpp"
#include "agent/log.hpp"

namespace ca::agent {

Server::Server(boost::asio::io_context& io, GlobalOptions options)
    : io_(io),
      o_(std::move(options)),
      owner_(geteuid()),
      cache_(io, o_),
      entry_(o_, cache_),
      answer_(io, o_, owner_, watcher_, cache_, entry_, sources_),
      watcher_(io, o_.ask_dir, owner_, answer_) {
    // Completions going up: the cache asks the answer side what was learnt, and tells
    // systemd's entry when it saved.
    cache_.set_hooks({
        .restore =
            [this](std::uint64_t h, const std::vector<std::uint64_t>& rejected_by,
                   const std::vector<std::uint64_t>& sent_to) { answer_.ledger().restore(h, rejected_by, sent_to); },
        .annotate = [this](proto::CachePayload& p,
                           std::span<const std::uint64_t> hashes) { answer_.ledger().annotate(p, hashes); },
        .before_save = [this] { answer_.confirm_sends(); },
        .after_save = [this] { entry_.push(); },
    });
    entry_.set_rejected_anywhere([this](std::uint64_t h) { return answer_.ledger().rejected_anywhere(h); });
}

Server::~Server() = default;

void Server::start() {
    // Before anything reads it: a cache directory another user can write to would let them
    // stop every answer (a planted `finished`) or block us (a FIFO named `cache`).
    if (auto bad = cache_.check_dir()) throw std::runtime_error(*bad);
    answer_.open();
    BootMemo memo;
    memo.put = [this](proto::CardResponse::Kind kind, const std::vector<unsigned char>& seed,
                      const proto::Secret& response) { cache_.put_card_response(kind, seed, response); };
    memo.response = [this](const std::vector<unsigned char>& seed) { return cache_.card_response(seed); };
    memo.has_next = [this] { return cache_.has_next_card_response(); };
    sources_ = make_sources(
        io_, o_, [this](const std::string& id, std::vector<proto::Secret> c) { on_source_delivery(id, std::move(c)); },
        std::move(memo));

    cache_.load();
    watcher_.open();  // throws if the directory cannot be made or watched
    entry_.push();
    watcher_.arm();
    CA_LOG(notice) << "crypt-agent " << to_string(o_.phase) << " instance watching " << o_.ask_dir.string()
                   << " for Ids " << [&] {
                          std::string ids;
                          for (const auto& m : o_.match) ids += (ids.empty() ? "" : ", ") + m;
                          return ids;
                      }();
    // READY=1 waits for the sources' start-up work (card-early): units ordered
    // after us, systemd-cryptsetup through cryptsetup-pre.target, ask only then.
    for (auto& src : sources_)
        if (src->prefetch([this] {
                if (--early_pending_ == 0) announce_ready();
            }))
            ++early_pending_;
    if (early_pending_ == 0) announce_ready();
    else sd_notify("STATUS=Waiting for the smartcard before systemd-cryptsetup asks");
    // A person may have typed before we started (a slow initramfs start): systemd has pushed
    // it already and its touch of the directory happened before our watch existed.
    entry_.harvest();
    watcher_.scan_now();
}

void Server::announce_ready() {
    if (stopping_) return;
    sd_notify("READY=1\nSTATUS=Watching for questions");
}

void Server::stop() {
    if (stopping_) return;
    stopping_ = true;
    sd_notify("STOPPING=1");
    // Before switch-root: whatever was typed since our last look goes into the handed-over cache.
    entry_.harvest();
    if (cache_.dirty()) cache_.save_now();
    answer_.stop();
    for (auto& s : sources_) s->stop();
    watcher_.stop();
    cache_.stop();
    const auto& st = answer_.stats();
    CA_LOG(notice) << "stopping: answered " << st.answered << " question(s), left " << st.ignored
                   << " to other agents; " << st.gone << " asker(s) went away unanswered, " << st.skipped
                   << " question(s) had been answered before a restart";
}

void Server::reconfigure(GlobalOptions options) {
    const bool dir_changed = options.ask_dir != o_.ask_dir;
    o_.match = std::move(options.match);
    o_.log_level = options.log_level;
    o_.cache_lifetime = options.cache_lifetime;
    o_.harvest = options.harvest;
    o_.systemd_entry = options.systemd_entry;
    o_.push_systemd = options.push_systemd;
    set_log_level(o_.log_level);
    if (dir_changed)
        CA_LOG(warning) << "ask-dir cannot change while running; restart the agent to use " << options.ask_dir.string();
    CA_LOG(notice) << "configuration reloaded";
    // Questions ignored under the old patterns may be ours now.
    answer_.forget_left_alone();
    watcher_.scan_now();
}

void Server::on_source_delivery(const std::string& id, std::vector<proto::Secret> candidates) {
    if (stopping_) return;
    const std::size_t n = candidates.size();
    for (auto& c : candidates) cache_.add(std::move(c), proto::Origin::card, {id});
    CA_LOG(info) << "received " << n << " candidate(s) for " << quoted_id(id);
    cache_.save_now();
    answer_.revisit_waiting();
}

}  // namespace ca::agent
