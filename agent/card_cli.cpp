// g++ 12 -O2 reports a false "potential null pointer dereference" inside
// Asio's io_context executor comparison (boost/asio/io_context.hpp,
// operator==) once it is wrapped in any_io_executor.  It must be silenced
// before the headers are read.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include "agent/card_cli.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <thread>

#include "agent/card_source.hpp"
#include "agent/pin_asker.hpp"
#if __has_include("agent/options.hpp")
#include "agent/options.hpp"
#define CA_CARD_CLI_GLOBAL_OPTIONS 1
#endif
#include "smartcard/derive.hpp"
#include "smartcard/profile.hpp"
#include "smartcard/service.hpp"

namespace ca::agent {
namespace {

namespace po = boost::program_options;
namespace sc = ca::smartcard;

struct CardCommandOptions {
    sc::CardOptions card;
    std::chrono::seconds pin_timeout{180};
    // derive
    std::string seed_file;
    std::vector<std::string> uuids;
    double wait_seconds = 30;
    bool check_determinism = false;
    bool login = false;  // list
};

// Log lines carry journald's "<N>" priority prefix, like the rest of the agent.
class Log {
public:
    explicit Log(int level) : level_(level) {}
    void operator()(int prio, const std::string& text) const {
        if (prio <= level_) std::cerr << '<' << prio << '>' << "crypt-agent card: " << text << std::endl;
    }
    void notice(const sc::Notice& n) const {
        (*this)(n.severity == sc::Notice::error ? 3 : n.severity == sc::Notice::warning ? 4 : 6, n.text);
    }

private:
    int level_;
};

po::options_description profile_options(CardCommandOptions& o, std::vector<std::string>& fields,
                                        double& watchdog_s, long& pin_timeout_s) {
    po::options_description d("card options");
    auto field = [&fields](const char* key) {
        return [&fields, key](const std::string& v) { fields.push_back(std::string(key) + "=" + v); };
    };
    d.add_options()
        ("reader", po::value(&o.card.reader_filter), "use readers whose name contains this")
        ("aid", po::value<std::string>()->notifier(field("aid")), "application to SELECT (hex)")
        ("command", po::value<std::string>()->notifier(field("command")), "challenge command CLA INS P1 P2 (hex)")
        ("challenge-length", po::value<std::string>()->notifier(field("challenge-length")), "seed length in bytes")
        ("pin-reference", po::value<std::string>()->notifier(field("pin-reference")), "VERIFY P2 (hex) or none")
        ("watchdog", po::value(&watchdog_s)->default_value(watchdog_s), "seconds before a silent card is abandoned")
        ("pin-timeout", po::value(&pin_timeout_s)->default_value(pin_timeout_s), "seconds to wait for a PIN")
        ("allow-last-pin-try", po::bool_switch(&o.card.allow_last_pin_try),
         "ask for the PIN even with one try left (a wrong PIN then blocks the card)");
    return d;
}

// Parses the command's options; returns nullopt (after printing why) on a usage error.
std::optional<CardCommandOptions> parse(const std::vector<std::string>& args, const std::string& cmd,
                                        const CardCliEnv& env, const Log& log) {
    const bool derive = cmd == "derive";
    CardCommandOptions o;
    // The card-* settings (file and command line) first; this command's own
    // short flags, where given, win.
    CardSourceConfig settings;
    for (const auto& [name, value] : env.card_settings)
        if (auto why = apply_card_setting(settings, name, value)) {
            log(3, name + ": " + *why);
            return std::nullopt;
        }
    o.card = settings.card;
    std::vector<std::string> fields;
    double watchdog_s = std::chrono::duration<double>(o.card.watchdog).count();
    long pin_timeout_s = static_cast<long>(settings.pin_timeout.count());
    po::options_description d = profile_options(o, fields, watchdog_s, pin_timeout_s);
    if (cmd == "list") d.add_options()("login", po::bool_switch(&o.login), "log in (PIN through ask-password) to list private keys a token hides before login");
    if (derive) {
        d.add_options()
            ("seed-file", po::value(&o.seed_file)->required(), "the seed: raw bytes, or hex text")
            ("uuid", po::value(&o.uuids)->required(), "volume LUKS UUID (repeatable)")
            ("wait", po::value(&o.wait_seconds)->default_value(30.0), "seconds to wait for a usable card")
            ("check-determinism", po::bool_switch(&o.check_determinism), "send each challenge twice and compare");
    }
    d.add_options()("help", "show these options");
    try {
        po::variables_map vm;
        po::store(po::command_line_parser(args).options(d).run(), vm);
        if (vm.count("help")) {
            std::cout << d;
            return std::nullopt;
        }
        po::notify(vm);
    } catch (const po::error& e) {
        log(3, std::string("usage: ") + e.what());
        std::cerr << d;
        return std::nullopt;
    }
    for (const auto& f : fields) {
        const auto eq = f.find('=');
        if (auto st = sc::set_profile_field(o.card.profile, f.substr(0, eq), f.substr(eq + 1)); !st) {
            log(3, st.error().message);
            return std::nullopt;
        }
    }
    if (watchdog_s <= 0 || pin_timeout_s <= 0 || o.wait_seconds <= 0) {
        log(3, "usage: --watchdog, --pin-timeout and --wait must be positive");
        return std::nullopt;
    }
    o.card.watchdog = std::chrono::milliseconds(static_cast<long>(watchdog_s * 1000));
    o.pin_timeout = std::chrono::seconds(pin_timeout_s);
    return o;
}

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
    deadline.expires_after(std::chrono::milliseconds(static_cast<long>(o.wait_seconds * 1000)));
    deadline.async_wait([&](boost::system::error_code ec) {
        if (ec) return;
        log(3, "no usable card answered within " + std::to_string(static_cast<long>(o.wait_seconds)) +
                   " s; insert the card or check the reader");
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

int card_main(const std::vector<std::string>& args, const CardCliEnv& env) {
    const Log log(env.log_level);
    if (args.empty()) {
        log(3, "usage: crypt-agent card list|status|derive|watch [options]");
        return 2;
    }
    const std::string& cmd = args.front();
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (cmd != "status" && cmd != "derive" && cmd != "watch" && cmd != "list") {
        log(3, "unknown card command \"" + cmd + "\"; expected list, status, derive or watch");
        return 2;
    }
    auto o = parse(rest, cmd, env, log);
    if (!o) return std::find(rest.begin(), rest.end(), "--help") != rest.end() ? 0 : 2;
    if (cmd == "status") return run_status(*o, log);
    if (cmd == "derive") return run_derive(*o, env, log);
    if (cmd == "list") return run_list(*o, env, log);
    return run_watch(*o, log);
}

#ifdef CA_CARD_CLI_GLOBAL_OPTIONS
int card_main(const std::vector<std::string>& args, const GlobalOptions& global) {
    CardCliEnv env;
    env.ask_dir = global.ask_dir;
    env.log_level = static_cast<int>(global.log_level);
    env.card_settings = global.card_settings;
    return card_main(args, env);
}
#endif

}  // namespace ca::agent
