// SPDX-License-Identifier: MIT
// The composition root of `crypt-agent serve`: builds the parts on one io_context and wires
// their completions together.  Each part has one job:
//   askdir/watcher   inotify doorbell and rescans of the ask directory   -> answer/flow
//   answer/flow      one question's way to its outcome                    -> cache, sources, send
//   cache/           the boot-scoped cache, its store and systemd's entry
//   sources/         candidates beyond the cache (a smartcard), the PIN asker
// and it owns what concerns the whole process: readiness (sd_notify), reload, the summary.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/answer/flow.hpp"
#include "agent/askdir/watcher.hpp"
#include "agent/cache/boot_cache.hpp"
#include "agent/cache/systemd_entry.hpp"
#include "agent/config/options.hpp"
#include "agent/sources/source.hpp"

namespace ca::agent {

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

    [[nodiscard]] const AnswerStats& stats() const noexcept { return answer_.stats(); }

private:
    void announce_ready();
    void on_source_delivery(const std::string& id, std::vector<proto::Secret> candidates);

    boost::asio::io_context& io_;
    GlobalOptions o_;  // the parts read it by reference: a reload changes it in place
    uid_t owner_;
    BootCache cache_;
    SystemdEntry entry_;
    SourceList sources_;
    Answerer answer_;
    Watcher watcher_;
    bool stopping_ = false;
    int early_pending_ = 0;  // sources still doing start-up work before READY=1
};

// `crypt-agent serve`: runs the loop until SIGTERM/SIGINT.  On SIGHUP `reload` rebuilds the
// settings (defaults, the file, then the command line again); it returns an error to log, or
// nullopt.  Without one, the file is re-read over the start-up settings.
using Reload = std::function<std::optional<std::string>(GlobalOptions& out)>;
int run_serve(GlobalOptions options, Reload reload = {});

}  // namespace ca::agent
