// SPDX-License-Identifier: MIT
// The agent's loop: one io_context, one thread.
//
// One question's way: inotify doorbell -> read and check the ask file ->
// match its Id -> learn from AcceptCached=0 -> choose candidates (cache, then
// sources) -> send one datagram -> remember what was sent, per question and per Id.
#pragma once

#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agent/answered_log.hpp"
#include "agent/ask_dir.hpp"
#include "agent/cache_store.hpp"
#include "agent/fd.hpp"
#include "agent/options.hpp"
#include "agent/source.hpp"
#include "proto/cache_codec.hpp"

namespace ca::agent {

struct ServerStats {
    std::uint64_t answered = 0;   // datagrams delivered
    std::uint64_t ignored = 0;    // questions left to other agents
    std::uint64_t gone = 0;       // askers that vanished before we could answer
    std::uint64_t skipped = 0;    // answered before a restart (AnsweredLog), not answered again
};

class Server {
public:
    Server(boost::asio::io_context& io, GlobalOptions options);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Creates the ask directory if missing, adds the watch, loads the cache, scans.
    // Throws std::runtime_error when the agent cannot work at all.
    void start();
    // Saves what was learnt and stops every asynchronous operation.
    void stop();
    // SIGHUP: new settings (patterns, log level, lifetime for new caches).
    void reconfigure(GlobalOptions options);

    [[nodiscard]] const ServerStats& stats() const noexcept { return stats_; }

private:
    struct Question;
    struct IdState {
        bool seen = false;                         // a question with this Id was seen
        std::uint64_t last_ask_us = 0;             // CLOCK_BOOTTIME of its latest question
        std::unordered_set<std::uint64_t> sent;     // candidate hashes sent to this Id, not yet judged
        std::unordered_set<std::uint64_t> rejected; // never offer these to this Id again
        std::unordered_set<std::uint64_t> excused;  // sent, then not judged once (the asker took systemd's entry)
        bool asked_sources = false;                 // candidate sources were asked for this Id
    };

    // ask directory and watch
    void announce_ready();
    void open_ask_dir();
    bool enter_dir();
    int inotify_dir_fd();  // the directory, opened on demand while draining events  // opens the watched directory for this wake; false if it was replaced
    void arm_watch();
    void on_inotify();
    void rewatch_later();
    void full_scan();
    void rescan_later();  // after a transient failure (out of fds)
    void process_name(const std::string& name, ino_t hint_ino);
    void forget(const std::string& name);

    // one question
    void consider(Question& q);
    void learn_from_retry(Question& q, IdState& ids);
    bool asker_gone(Question& q);
    bool answered_before(Question& q);  // true if an earlier instance (or this one) answered it
    void hold_uncertain(Question& q);   // the one reply a killed instance may not have sent
    void prune_ids();  // bounds the per-Id table  // true (and the question dropped, logged) if its PID is dead
    void answer_or_wait(Question& q);
    void send_to(Question& q, std::vector<std::size_t> chosen);
    void arm_deadline(Question& q);
    void retry_send_later(Question& q);
    void record_answer(Question& q);  // AnsweredLog, just before a send

    // cache
    void load_cache();
    void harvest_systemd_entry();
    void add_candidate(proto::Secret value, proto::Origin origin, std::vector<std::string> patterns);
    void ensure_cache();
    void schedule_save();
    void save_now();
    void arm_cache_expiry();
    void push_to_systemd();
    void expire_cache();
    void revisit_waiting();
    void on_source_delivery(const std::string& id, std::vector<proto::Secret> candidates);
    void memo_put(const std::string& key, proto::Secret value);
    [[nodiscard]] std::vector<std::pair<std::string, proto::Secret>> memo_find(const std::string& prefix) const;
    [[nodiscard]] std::uint64_t hash_of(const proto::Secret& s) const noexcept;
    [[nodiscard]] std::optional<std::size_t> index_of(std::uint64_t h) const noexcept;
    [[nodiscard]] bool id_matches(const std::string& id) const;

    boost::asio::io_context& io_;
    GlobalOptions o_;
    CacheStore store_;
    uid_t owner_;
    std::uint64_t k0_ = 0, k1_ = 0;  // per-process key for candidate identity (never logged)
    std::unique_ptr<proto::FingerprintKey> fp_;  // a separate key for 4-hex fingerprints in logs

    Fd dir_fd_;            // open only while handling one wake
    struct stat dir_st_{};  // device and inode of the watched directory
    bool have_dir_ = false;
    bool dir_unsafe_ = false;  // the ask directory became writable by others: answer nothing
    std::string ask_dir_str_;  // the path dir_fd_ was opened by
    std::unique_ptr<boost::asio::posix::stream_descriptor> inotify_;
    int watch_ = -1;
    boost::asio::steady_timer rewatch_timer_;
    boost::asio::steady_timer rescan_timer_;
    bool rescan_armed_ = false;
    bool fd_pressure_logged_ = false;
    Fd sender_;
    AnsweredLog answered_;      // which questions got a reply, for the instance after a crash
    bool answered_warned_ = false;
    bool evicted_warned_ = false;
    std::string rewatch_error_;  // why the ask directory cannot be watched (logged once)
    proto::Secret reply_buf_;  // locked, reused for every datagram, wiped after each send

    std::unordered_map<std::string, std::unique_ptr<Question>> questions_;
    std::unordered_map<std::uint64_t, IdState> ids_;  // by proto::id_hash: bounded whatever the Ids' length
    std::optional<proto::CachePayload> cache_;
    std::vector<std::uint64_t> cache_hashes_;  // parallel to cache_->candidates
    std::unordered_map<std::uint64_t, std::uint64_t> in_systemd_entry_;  // hash -> first seen there (boottime)
    std::unordered_map<std::uint64_t, std::uint64_t> entry_seen_us_;     // hash -> when it last arrived there, kept when it goes
    bool dirty_ = false;      // changed since the last successful save
    bool left_out_ = false;   // the last save had to leave candidates out (too large)
    bool fit_warned_ = false;
    boost::asio::steady_timer save_timer_;
    bool save_armed_ = false;
    boost::asio::steady_timer expiry_timer_;
    bool finished_logged_ = false;
    bool finished_ = false;  // `finish` ran this boot (re-read when the directory is touched)
    std::uint64_t last_harvest_us_ = 0;
    std::uint64_t pushed_hash_ = 0;  // what we last pushed into systemd's entry

    SourceList sources_;
    ServerStats stats_;
    bool stopping_ = false;
    int early_pending_ = 0;  // sources still doing start-up work before READY=1
};

// `crypt-agent serve`: runs the loop until SIGTERM/SIGINT.  On SIGHUP `reload` rebuilds the
// settings (defaults, the file, then the command line again); it returns an error to log, or
// nullopt.  Without one, the file is re-read over the start-up settings.
using Reload = std::function<std::optional<std::string>(GlobalOptions& out)>;
int run_serve(GlobalOptions options, Reload reload = {});

}  // namespace ca::agent
