// SPDX-License-Identifier: MIT
// `crypt-agent serve`: the io_context, the signals, reload.
#include <pthread.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "agent/daemon/notify.hpp"
#include "agent/daemon/server.hpp"
#include "agent/log.hpp"

namespace ca::agent {

namespace asio = boost::asio;

namespace {

// The three signals stay blocked while the parts start: every thread started meanwhile (the
// PC/SC monitor) inherits the mask and leaves them to this one, where Asio's handler runs
// while the loop waits (Boost 1.81 installs it without SA_RESTART, so another thread's
// blocking call must never be the one interrupted), and a SIGTERM during start-up waits,
// queued, instead of killing us half-started.
class BlockedSignals {
public:
    BlockedSignals() : mask_(handled_signals()), ok_(pthread_sigmask(SIG_BLOCK, &mask_, nullptr) == 0) {}
    BlockedSignals(const BlockedSignals&) = delete;
    BlockedSignals& operator=(const BlockedSignals&) = delete;
    ~BlockedSignals() { unblock(); }
    [[nodiscard]] bool ok() const noexcept { return ok_; }
    void unblock() noexcept {
        if (ok_) (void)pthread_sigmask(SIG_UNBLOCK, &mask_, nullptr);
        ok_ = false;
    }

private:
    static sigset_t handled_signals() noexcept {
        sigset_t set{};
        sigemptyset(&set);
        for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
        return set;
    }

    sigset_t mask_{};
    bool ok_ = false;
};

}  // namespace

int run_serve(GlobalOptions options, Reload reload) {
    BlockedSignals blocked;
    if (!blocked.ok()) {
        CA_LOG(err) << "cannot start: cannot block signals";
        return 1;
    }
    asio::io_context io(1);
    std::optional<asio::signal_set> signals;
    std::unique_ptr<Server> server;
    try {
        // First: its self-pipe is two descriptors, taken while they are still there.
        signals.emplace(io, SIGTERM, SIGINT, SIGHUP);
        server = std::make_unique<Server>(io, options);
        server->start();
    } catch (const std::exception& e) {
        CA_LOG(err) << "cannot start: " << e.what();
        return 1;
    }
    auto on_signal = [&](int sig) {
        if (sig == SIGHUP) {
            GlobalOptions fresh = options;
            std::optional<std::string> failed;
            if (reload) failed = reload(fresh);
            else if (auto err = load_config_file(fresh)) failed = err->describe();
            if (failed) {
                CA_LOG(err) << "SIGHUP: keeping the old configuration: " << *failed;
            } else {
                sd_notify("RELOADING=1");
                server->reconfigure(std::move(fresh));
                sd_notify("READY=1");
            }
            return true;
        }
        CA_LOG(info) << "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ", stopping";
        server->stop();
        io.stop();
        return false;
    };
    std::function<void()> arm = [&] {
        signals->async_wait([&](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            if (on_signal(sig)) arm();
        });
    };
    arm();
    blocked.unblock();
    io.run();
    return 0;
}

}  // namespace ca::agent
