// SPDX-License-Identifier: MIT

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

#include "agent/sources/pin_asker.hpp"
#include "agent/log.hpp"
#include "agent/options.hpp"
#include "smartcard/derive.hpp"
#include "smartcard/pkcs11.hpp"
#include "smartcard/pkcs11_uri.hpp"
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
    bool login = false;  // list
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
// PKCS#11 seeds have no fixed length (an EC key's is a point): any hex text is read as hex.
sc::Expected<std::vector<unsigned char>> read_seed(const std::string& path, std::size_t length, bool any_hex = false) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return sc::make_error(sc::Errc::bad_profile, "cannot read the seed file " + path);
    std::vector<unsigned char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string text(raw.begin(), raw.end());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (any_hex && !text.empty() && text.size() % 2 == 0)
        if (auto decoded = sc::unhex(text); decoded && decoded->size() * 2 == text.size()) return *decoded;
    if (text.size() == 2 * length)
        if (auto decoded = sc::unhex(text); decoded && decoded->size() == length) return *decoded;
    return raw;
}

int run_derive(const CardCommandOptions& o, const CardCliEnv& env, const Log& log) {
    auto seed = read_seed(o.seed_file, o.card.profile.challenge_length, o.card.pkcs11.has_value());
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

// One PIN through ask-password on a private loop (card list --login).
std::optional<proto::Secret> ask_pin_blocking(const CardCliEnv& env, std::chrono::seconds timeout,
                                              const sc::Pkcs11Token& t) {
    boost::asio::io_context io;
    PinAsker asker(io, PinAskerOptions{env.ask_dir, timeout, 0});
    std::optional<proto::Secret> out;
    sc::PinPrompt::Request req;
    req.reader = t.label;
    req.token_label = t.label;
    req.count_low = t.pin_count_low;
    req.last_try = t.pin_final_try;
    req.tries_left = t.pin_final_try ? 1 : -1;
    asker.ask(req, [&out](sc::Expected<proto::Secret> pin) {
        if (pin) out = std::move(pin).value();
    });
    io.run();
    return out;
}

// PC/SC readers, then the module's tokens with their private keys.  The
// module is loaded, used and finalized on this thread.
int run_list(const CardCommandOptions& o, const CardCliEnv& env, const Log& log) {
    if (auto readers = sc::list_readers()) {
        for (const auto& r : *readers) std::cout << "reader \"" << r << "\"\n";
        if (readers->empty()) std::cout << "no PC/SC readers\n";
    } else {
        std::cout << "PC/SC: " << readers.error().message << "\n";
    }
    sc::Pkcs11Options p = o.card.pkcs11.value_or(sc::Pkcs11Options{});
    auto module = sc::Pkcs11Module::load(p);
    if (!module) {
        log(3, module.error().message);
        return 1;
    }
    std::cout << "module " << (p.module.empty() ? sc::default_pkcs11_module() : p.module.c_str()) << "\n";
    auto tokens = (*module)->list([&](const sc::Pkcs11Token& t) -> std::optional<proto::Secret> {
        if (!o.login) return std::nullopt;
        if (t.pin_final_try && !o.card.allow_last_pin_try) {
            log(4, "token \"" + t.label + "\" has its final PIN try; not logging in (card-allow-last-pin-try)");
            return std::nullopt;
        }
        if (t.pin_locked) return std::nullopt;
        return ask_pin_blocking(env, o.pin_timeout, t);
    });
    if (!tokens) {
        log(3, tokens.error().message);
        return 1;
    }
    if (tokens->empty()) std::cout << "no tokens\n";
    for (const auto& t : *tokens) {
        std::cout << "token \"" << t.label << "\": manufacturer \"" << t.manufacturer << "\", model \"" << t.model
                  << "\", serial \"" << t.serial << "\", slot \"" << t.slot_description << "\", login "
                  << (t.login_required ? "required" : "not required") << ", PIN " << t.pin_state()
                  << (t.protected_path ? ", PIN pad" : "") << "\n";
        if (!t.note.empty()) std::cout << "  " << t.note << "\n";
        if (t.keys.empty())
            std::cout << (t.keys_need_login ? "  private keys hidden before login (use --login)\n" : "  no private keys\n");
        for (const auto& k : t.keys)
            std::cout << "  key " << k.uri << " " << k.type_text() << " "
                      << (k.usable ? "usable" : "not usable: " + k.why_not) << "\n";
    }
    return 0;
}

// PKCS#11 status: the token and key card-uri chooses, without logging in.
int run_status_pkcs11(const CardCommandOptions& o, const Log& log) {
    auto module = sc::Pkcs11Module::load(*o.card.pkcs11);
    if (!module) {
        log(3, module.error().message);
        return 1;
    }
    auto tokens = (*module)->list(nullptr);
    if (!tokens) {
        log(3, tokens.error().message);
        return 1;
    }
    auto key = (*module)->describe_key();
    std::cout << "card-uri " << o.card.pkcs11->uri << ": ";
    if (!key) {
        std::cout << key.error().message << "\n";
        return 1;
    }
    std::cout << "key " << key->uri << " " << key->type_text() << " "
              << (key->usable ? "usable" : "not usable: " + key->why_not) << "\n";
    for (const auto& t : *tokens)
        if (key->uri.find("token=" + sc::pkcs11_uri_escape({reinterpret_cast<const unsigned char*>(t.label.data()),
                                                             t.label.size()}) + ";") != std::string::npos)
            std::cout << "token \"" << t.label << "\": PIN " << t.pin_state() << (t.protected_path ? ", PIN pad" : "")
                      << "\n";
    return key->usable ? 0 : 1;
}

int run_status(const CardCommandOptions& o, const Log& log) {
    if (o.card.pkcs11) return run_status_pkcs11(o, log);
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
    o.login = a.login;
    if (a.command == "list") return run_list(o, env, log);
    if (a.command == "status") return run_status(o, log);
    if (a.command == "watch") return run_watch(o, log);
    if (a.command == "derive") {
        if (o.seed_file.empty() || o.uuids.empty()) {
            std::cerr << "crypt-agent card derive: needs --card-seed-file FILE and at least one --uuid UUID\n";
            return 2;
        }
        return run_derive(o, env, log);
    }
    std::cerr << "crypt-agent card: unknown card command '" << a.command << "'; expected list, status, derive or watch\n";
    return 2;
}

}  // namespace ca::agent
