// g++ 12 -O2 reports a false "potential null pointer dereference" inside
// Asio's io_context executor comparison (boost/asio/io_context.hpp,
// operator==) once it is wrapped in any_io_executor.  It must be silenced
// before the headers are read.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include "agent/card_cli.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <thread>

#include "agent/pin_asker.hpp"
#include "agent/log.hpp"
#include "agent/options.hpp"
#include "smartcard/derive.hpp"
#include "smartcard/profile.hpp"
#include "smartcard/service.hpp"

namespace ca::agent {
namespace {

namespace sc = ca::smartcard;

struct CardCommandOptions {
    sc::CardOptions card;
    std::chrono::seconds pin_timeout{180};
    // derive
    std::string seed_file;
    std::vector<std::string> uuids;
    std::chrono::milliseconds wait{30000};
    bool check_determinism = false;
};

// Log lines carry journald's "<N>" priority prefix, like the rest of the agent.
class Log {
public:
    explicit Log(int level) : level_(level) {}
    void operator()(int prio, const std::string& text) const {
        if (prio <= level_) std::cerr << line_prefix(static_cast<Level>(prio)) << text << std::endl;
    }
    void notice(const sc::Notice& n) const {
        (*this)(n.severity == sc::Notice::error ? 3 : n.severity == sc::Notice::warning ? 4 : 6, n.text);
    }

private:
    int level_;
};

// A seed file holds raw bytes, or the same bytes as hex text (with an optional newline).
sc::Expected<std::vector<unsigned char>> read_seed(const std::string& path, std::size_t length) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return sc::make_error(sc::Errc::bad_profile, "cannot read the seed file " + path);
    std::vector<unsigned char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string text(raw.begin(), raw.end());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.size() == 2 * length)
        if (auto decoded = sc::unhex(text); decoded && decoded->size() == length) return *decoded;
    return raw;
}

int run_derive(const CardCommandOptions& o, const CardCliEnv& env, const Log& log) {
    auto seed = read_seed(o.seed_file, o.card.profile.challenge_length);
    if (!seed) { log(3, seed.error().message); return 1; }

    boost::asio::io_context io;
    PinAsker asker(io, PinAskerOptions{env.ask_dir, o.pin_timeout, 0});
    auto service = sc::CardService::create(io.get_executor(), o.card, &asker,
                                           [&log](const sc::Notice& n) { log.notice(n); });
    int rc = 1;
    boost::asio::steady_timer deadline(io);
    boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
    boost::asio::signal_set status_signal(io, SIGUSR1);
    bool finished = false;
    auto finish = [&](int code) {
        if (finished) return;  // the first reason to stop is the exit code
        finished = true;
        rc = code;
        deadline.cancel();
        stop_signals.cancel();
        status_signal.cancel();
        service->stop();
    };
    stop_signals.async_wait([&](boost::system::error_code ec, int sig) {
        if (ec) return;
        log(5, std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT"));
        finish(128 + sig);
    });
    // SIGUSR1 logs the state: shows that the loop answers while a card operation hangs.
    std::function<void()> arm_status = [&] {
        status_signal.async_wait([&](boost::system::error_code ec, int) {
            if (ec) return;
            std::string s = "status: pcscd " + std::string(service->service_up() ? "up" : "down");
            for (const auto& r : service->readers())
                s += "; reader \"" + r.name + "\" " + (r.card_present ? "card present" : "empty") +
                     (r.frozen ? " (not answering)" : "");
            s += "; " + std::to_string(service->operations_started()) + " card operations";
            log(6, s);
            arm_status();
        });
    };
    arm_status();
    deadline.expires_after(o.wait);
    deadline.async_wait([&](boost::system::error_code ec) {
        if (ec) return;
        log(3, "no usable card answered within " +
                   std::to_string(std::chrono::duration_cast<std::chrono::seconds>(o.wait).count()) +
                   " s (card-wait); insert the card or check the reader");
        finish(1);
    });
    service->start();
    service->request_response(*seed, o.check_determinism, [&](sc::Expected<proto::Secret> r) {
        if (!r) {
            log(3, "cannot get a response from the card: " + r.error().message);
            finish(1);
            return;
        }
        for (const auto& uuid : o.uuids) {
            const proto::Secret pass = sc::derive_volume_key(*r, *seed, uuid);
            // The passphrase is this command's product: stdout only, never the log.
            std::cout.write(pass.chars(), static_cast<std::streamsize>(pass.size()));
            std::cout << '\n';
        }
        std::cout.flush();
        log(6, "derived " + std::to_string(o.uuids.size()) + " passphrase(s) after " +
                   std::to_string(service->operations_started()) + " card session(s), " +
                   std::to_string(service->counters().challenges.load()) + " challenge(s), " +
                   std::to_string(service->counters().apdus.load()) + " APDU(s)");
        finish(0);
    });
    io.run();
    return rc;
}

int run_watch(const CardCommandOptions& o, const Log& log) {
    boost::asio::io_context io;
    auto service = sc::CardService::create(io.get_executor(), o.card, nullptr,
                                           [&log](const sc::Notice& n) { log.notice(n); });
    int rc = 0;
    boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
    stop_signals.async_wait([&](boost::system::error_code ec, int sig) {
        if (ec) return;
        rc = 128 + sig;
        service->stop();
    });
    service->start();
    log(6, "watching readers; stop with SIGTERM");
    io.run();
    return rc;
}

int run_status(const CardCommandOptions& o, const Log& log) {
    auto readers = sc::list_readers();
    if (!readers) {
        log(3, readers.error().message + " (is pcscd running?)");
        return 1;
    }
    if (readers->empty()) std::cout << "no readers\n";
    int rc = 0;
    for (const auto& name : *readers) {
        if (!o.card.reader_filter.empty() && name.find(o.card.reader_filter) == std::string::npos) continue;
        // The probe blocks on a frozen card; it runs on a thread we can walk away from.
        auto result = std::make_shared<std::promise<sc::ReaderStatus>>();
        auto fut = result->get_future();
        std::thread([result, name, profile = o.card.profile] {
            result->set_value(sc::probe_reader(name, profile, nullptr));
        }).detach();
        if (fut.wait_for(o.card.watchdog) != std::future_status::ready) {
            std::cout << "reader \"" << name << "\": card does not answer (abandoned after "
                      << o.card.watchdog.count() << " ms)\n";
            rc = 1;
            continue;
        }
        const sc::ReaderStatus st = fut.get();
        std::cout << "reader \"" << name << "\": ";
        if (st.error) {
            std::cout << "error: " << st.error->message << '\n';
            rc = 1;
            continue;
        }
        if (!st.card_present) { std::cout << "no card\n"; continue; }
        std::cout << "card present, ATR " << st.atr << ", profile \"" << o.card.profile.name
                  << "\": application " << st.application << ", PIN " << (st.pin.empty() ? "-" : st.pin)
                  << '\n';
    }
    (void)log;
    return rc;
}

}  // namespace

int card_main(const CardArgs& a, const GlobalOptions& global) {
    const Log log(static_cast<int>(global.log_level));
    CardCliEnv env;
    env.ask_dir = global.ask_dir;
    CardCommandOptions o;
    o.card = global.card.card;
    o.pin_timeout = global.card.pin_timeout;
    o.seed_file = global.card.seed_file.string();
    o.uuids = a.uuids;
    o.wait = global.card.wait;
    o.check_determinism = a.check_determinism;
    if (a.command == "status") return run_status(o, log);
    if (a.command == "watch") return run_watch(o, log);
    if (a.command == "derive") {
        if (o.seed_file.empty() || o.uuids.empty()) {
            std::cerr << "crypt-agent card derive: needs --card-seed-file FILE and at least one --uuid UUID\n";
            return 2;
        }
        return run_derive(o, env, log);
    }
    std::cerr << "crypt-agent card: unknown card command '" << a.command << "'; expected status, derive or watch\n";
    return 2;
}

}  // namespace ca::agent
