#include "agent/cli.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "agent/commands.hpp"
#include "agent/log.hpp"
#include "agent/options.hpp"
#include "agent/server.hpp"

#if __has_include("agent/card_cli.hpp")
#include "agent/card_cli.hpp"
#define CA_HAVE_CARD 1
#endif
#if __has_include("agent/luks_cli.hpp")
#include "agent/luks_cli.hpp"
#define CA_HAVE_LUKS 1
#endif

#ifndef CRYPT_AGENT_VERSION
#define CRYPT_AGENT_VERSION "0.0.0"
#endif

namespace po = boost::program_options;

namespace ca::agent {

int main_cli_unguarded(int argc, char** argv);

void harden_process() noexcept {
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    rlimit none{0, 0};
    (void)setrlimit(RLIMIT_CORE, &none);
}

namespace {

constexpr const char* kUsage = R"(Usage: crypt-agent [OPTIONS] COMMAND [COMMAND OPTIONS]

A systemd password agent that unlocks every LUKS volume of a boot with one
unlock act: it answers systemd's ask-password questions (Id "cryptsetup:...")
from a boot-scoped cache filled once, by `cache put`, by the passphrase a person
types for the first volume, or by a smartcard.

Commands:
  serve                 answer questions until stopped (what crypt-agent.service runs)
  list                  show pending questions
  cache put             cache one secret read from standard input (never from argv)
  cache status          show what is cached (counts and lifetimes, never the secret)
  cache flush           remove every copy of the cache
  finish                flush every cache copy at the end of boot (crypt-agent-finish.service)
  card ...              smartcard commands (card status, card derive)
  enroll VOLUME...      enrol volumes for smartcard keys
  rotate [VOLUME...]    rotate one-time keys

Run `crypt-agent COMMAND --help` for a command's options.  Every option can also be
set in the configuration file (default /etc/crypt-agent.conf) as "name = value".
)";

po::options_description global_options() {
    po::options_description d("Options for every command");
    d.add_options()
        ("help,h", "show help (for a command after its name)")
        ("version", "show the version")
        ("config", po::value<std::string>()->value_name("FILE"), "configuration file (default /etc/crypt-agent.conf)")
        ("ask-dir", po::value<std::string>()->value_name("DIR"), "ask-password directory (default /run/systemd/ask-password)")
        ("keyring", po::value<std::string>()->value_name("user|session"),
         "keyring of the cache: 'user' is root's user keyring (default, survives switch-root); 'session' is for tests and demos")
        ("cache-dir", po::value<std::string>()->value_name("DIR"), "directory of the tmpfs fallback store (default /run/crypt-agent)")
        ("log-level", po::value<std::string>()->value_name("LEVEL"), "debug, info (default), notice, warning or err");
    return d;
}

po::options_description card_options();

po::options_description serve_options() {
    po::options_description d("serve options");
    d.add_options()
        ("phase", po::value<std::string>()->value_name("initramfs|root"), "which boot phase this instance serves (default root)")
        ("match", po::value<std::vector<std::string>>()->value_name("GLOB")->composing(),
         "question Ids to answer, repeatable (default 'cryptsetup:*'); others are left to other agents")
        ("cache-lifetime", po::value<std::string>()->value_name("DURATION"),
         "hard upper bound of a new cache: 900, 15min, 1h (default 15min); enforced by the kernel and the agent")
        ("harvest", po::value<std::string>()->value_name("yes|no"),
         "take passphrases typed for one volume (systemd's 'cryptsetup' keyring entry) into the cache (default yes)")
        ("systemd-entry", po::value<std::string>()->value_name("clear|keep"),
         "after harvesting, clear systemd's entry so it is not tried silently on volumes it does not open (default clear)")
        ("push-systemd", po::value<std::string>()->value_name("yes|no"), "also push candidates into systemd's entry (default no)");
    d.add(card_options());
    return d;
}

// The card-* settings: serve, card, enroll, rotate and finish take the same ones.
po::options_description card_options() {
    po::options_description d("card options");
    d.add_options()
        ("card-enable", po::value<std::string>()->value_name("yes|no"), "derive keys from a smartcard for enrolled volumes")
        ("card-volume", po::value<std::vector<std::string>>()->value_name("\"ID UUID\"")->composing(),
         "answer question ID with the card key of the LUKS volume UUID (with card-seed-file), repeatable")
        ("card-seed-file", po::value<std::string>()->value_name("FILE"), "seed for card-volume lines (before enrolment)")
        ("card-luks-tokens", po::value<std::string>()->value_name("yes|no"), "read seeds from enrolled volumes (default yes)")
        ("card-luks1-dir", po::value<std::string>()->value_name("DIR"), "seed store of LUKS1 volumes")
        ("card-reader", po::value<std::string>()->value_name("SUBSTRING"), "use only readers whose name contains this")
        ("card-aid", po::value<std::string>()->value_name("HEX"), "application to SELECT before the challenge")
        ("card-command", po::value<std::string>()->value_name("CLAINSP1P2"), "challenge command (default 00880600)")
        ("card-challenge-length", po::value<std::string>()->value_name("N"), "challenge length in bytes")
        ("card-pin-reference", po::value<std::string>()->value_name("HEX|none"), "PIN reference for VERIFY")
        ("card-watchdog", po::value<std::string>()->value_name("SECONDS"), "abandon a card that does not answer within this time")
        ("card-pin-timeout", po::value<std::string>()->value_name("SECONDS"), "how long to wait for the PIN")
        ("card-allow-last-pin-try", po::value<std::string>()->value_name("yes|no"), "allow trying a PIN with one try left (default no)")
        ("card-select-p2", po::value<std::string>()->value_name("HEX"), "SELECT's P2: 00 (default, OpenPGP cards) or 0C")
        ("card-uri", po::value<std::string>()->value_name("pkcs11:...|auto"), "PKCS#11 key (RFC 7512 URI); chooses the PKCS#11 backend")
        ("card-module", po::value<std::string>()->value_name("PATH"), "PKCS#11 module (default p11-kit's proxy); chooses the PKCS#11 backend")
        ("card-pin-pad", po::value<std::string>()->value_name("auto|yes|no"), "PKCS#11: log in on the reader's PIN pad (auto: when the token says it has one)");
    return d;
}

po::options_description finish_options() {
    po::options_description d("finish options");
    d.add_options()("rotate-on-finish", po::value<std::string>()->value_name("auto|yes|no"),
                    "rotate enrolled volumes' keys after flushing (auto: when a card is configured)");
    return d;
}

po::options_description cache_put_options() {
    po::options_description d("cache put options");
    d.add_options()
        ("ttl", po::value<std::string>()->value_name("SECONDS"), "lifetime of the cache from now (default: cache-lifetime, 15 min)")
        ("match", po::value<std::vector<std::string>>()->value_name("GLOB")->composing(),
         "Ids this secret may answer, repeatable (default: every Id the agent answers)");
    return d;
}

// Options that take a value, so the command word can be found before parsing: read from
// the descriptions themselves, so a new option cannot be forgotten here.
std::set<std::string> valued_options() {
    std::set<std::string> out;
    auto add = [&out](const po::options_description& d) {
        for (const auto& opt : d.options())
            if (opt->semantic()->max_tokens() > 0) out.insert("--" + opt->long_name());
    };
    add(global_options());
    add(serve_options());
    add(cache_put_options());
    add(finish_options());
    return out;
}

struct Split {
    std::vector<std::string> words;  // command and subcommand
    std::vector<std::string> rest;   // everything else, in order
};

Split split_command(int argc, char** argv) {
    Split s;
    const auto valued = valued_options();
    bool after_dashdash = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (after_dashdash) { s.rest.push_back(a); continue; }
        if (a == "--") { after_dashdash = true; s.rest.push_back(a); continue; }
        if (!a.empty() && a[0] == '-') {
            s.rest.push_back(a);
            if (valued.count(a) && i + 1 < argc) s.rest.push_back(argv[++i]);
            continue;
        }
        const bool wants_sub = !s.words.empty() && s.words.size() == 1 && (s.words[0] == "cache" || s.words[0] == "card");
        if (s.words.empty() || wants_sub) s.words.push_back(a);
        else s.rest.push_back(a);
    }
    return s;
}

int usage_error(const std::string& what) {
    std::cerr << "crypt-agent: " << what << "\nTry 'crypt-agent --help'.\n";
    return 2;
}

// Applies command-line values through the same function as the file, so both take the same names.
std::optional<std::string> apply_cli(GlobalOptions& o, const po::variables_map& vm) {
    bool match_reset = false;
    for (const auto& [name, value] : vm) {
        if (name == "help" || name == "version" || name == "config" || name == "ttl") continue;
        if (name == "match" || name == "card-volume") {
            for (const auto& m : value.as<std::vector<std::string>>())
                if (auto e = apply_setting(o, name, m, match_reset)) return e;
            continue;
        }
        if (auto e = apply_setting(o, name, value.as<std::string>(), match_reset)) return e;
    }
    return std::nullopt;
}

}  // namespace

int main_cli(int argc, char** argv) {
    try {
        return main_cli_unguarded(argc, argv);
    } catch (const std::exception& e) {
        // Start-up failures are exceptions (STYLE.md); none may end in terminate() and a core.
        std::cerr << "<3>crypt-agent: " << e.what() << "\n";
        return 1;
    }
}

int main_cli_unguarded(int argc, char** argv) {
    harden_process();
    init_logging(Level::info);
    const auto split = split_command(argc, argv);
    const std::string cmd = split.words.empty() ? "" : split.words[0];
    const std::string sub = split.words.size() > 1 ? split.words[1] : "";
    const bool external = cmd == "card" || cmd == "enroll" || cmd == "rotate";

    po::options_description desc = global_options();
    if (cmd == "serve") desc.add(serve_options());
    if (cmd == "cache" && sub == "put") desc.add(cache_put_options());
    if (cmd == "finish") desc.add(finish_options());
    if (external || cmd == "finish") desc.add(card_options());

    po::variables_map vm;
    std::vector<std::string> unrecognised;
    try {
        auto parser = po::command_line_parser(split.rest).options(desc).style(po::command_line_style::unix_style);
        if (external) parser.allow_unregistered();
        auto parsed = parser.run();
        if (external) unrecognised = po::collect_unrecognized(parsed.options, po::include_positional);
        else {
            for (const auto& opt : parsed.options)
                if (opt.position_key >= 0) return usage_error("unexpected argument '" + opt.value.front() + "'");
        }
        po::store(parsed, vm);
        po::notify(vm);
    } catch (const po::error& e) {
        return usage_error(e.what());
    }

    if (vm.count("version")) { std::cout << "crypt-agent " << CRYPT_AGENT_VERSION << "\n"; return 0; }
    if (vm.count("help") && !external) {
        if (cmd.empty()) std::cout << kUsage << "\n" << global_options();
        else if (cmd == "serve") std::cout << "Usage: crypt-agent serve [OPTIONS]\n\nAnswer ask-password questions until SIGTERM; SIGHUP re-reads the configuration.\n\n" << serve_options() << "\n" << global_options();
        else if (cmd == "cache" && sub == "put") std::cout << "Usage: crypt-agent cache put [--ttl SECONDS] [--match GLOB]... < secret\n\nCache one secret read from standard input (a terminal does not echo it).\n\n" << cache_put_options() << "\n" << global_options();
        else if (cmd == "cache") std::cout << "Usage: crypt-agent cache put|status|flush [OPTIONS]\n\n  put     cache a secret from standard input\n  status  show counts, patterns and time left (never the secret)\n  flush   remove the keyring key and the fallback file\n\n" << global_options();
        else if (cmd == "list") std::cout << "Usage: crypt-agent list [--ask-dir DIR]\n\nShow pending questions: file, Id, asker PID (alive or dead), time left, message.\n\n" << global_options();
        else if (cmd == "finish") std::cout << "Usage: crypt-agent finish [--rotate-on-finish auto|yes|no] [OPTIONS]\n\nAt the end of boot: remove every copy of the cache (keyring key, fallback file,\nsystemd's 'cryptsetup' entry), stop running agents from storing it again, and\n(when a card is configured, or with --rotate-on-finish yes) rotate the one-time keys\nof the enrolled volumes in /etc/crypttab.\n\n" << finish_options() << "\n" << global_options();
        else std::cout << kUsage;
        return 0;
    }
    if (cmd.empty()) return usage_error("no command given");

    GlobalOptions o;
    if (vm.count("config")) { o.config_file = vm["config"].as<std::string>(); o.config_file_explicit = true; }
    if (auto err = load_config_file(o)) {
        std::cerr << "crypt-agent: " << err->describe() << "\n";
        return 2;
    }
    if (auto err = apply_cli(o, vm)) return usage_error(*err);
    o.rest = unrecognised;
    set_log_level(o.log_level);

    if (cmd == "serve") {
        // SIGHUP: the same order as at start (defaults, the file, the command line), so the
        // command line keeps winning over the file.
        Reload reload = [vm, base = o](GlobalOptions& out) -> std::optional<std::string> {
            GlobalOptions fresh;
            fresh.config_file = base.config_file;
            fresh.config_file_explicit = base.config_file_explicit;
            if (auto err = load_config_file(fresh)) return err->describe();
            if (auto err = apply_cli(fresh, vm)) return *err;
            out = std::move(fresh);
            return std::nullopt;
        };
        return run_serve(o, std::move(reload));
    }
    if (cmd == "list") return cmd_list(o);
    if (cmd == "finish") return cmd_finish(o);
    if (cmd == "cache") {
        if (sub == "put") {
            CachePutArgs a;
            if (vm.count("ttl")) {
                GlobalOptions tmp;
                bool reset = false;
                if (auto e = apply_setting(tmp, "cache-lifetime", vm["ttl"].as<std::string>(), reset))
                    return usage_error("--ttl: " + *e);
                a.ttl = tmp.cache_lifetime;
            }
            if (vm.count("match")) {
                a.match = vm["match"].as<std::vector<std::string>>();
                o.match = {"cryptsetup:*"};  // --match here restricts the secret, not the agent
            }
            return cmd_cache_put(o, a);
        }
        if (sub == "status") return cmd_cache_status(o);
        if (sub == "flush") return cmd_cache_flush(o);
        return usage_error(sub.empty() ? "cache needs put, status or flush" : "unknown cache command '" + sub + "'");
    }
#ifdef CA_HAVE_CARD
    if (cmd == "card") {
        std::vector<std::string> args;
        if (!sub.empty()) args.push_back(sub);
        if (vm.count("help")) args.push_back("--help");
        args.insert(args.end(), unrecognised.begin(), unrecognised.end());
        CardCliEnv env;
        env.ask_dir = o.ask_dir;
        env.log_level = static_cast<int>(o.log_level);
        env.card_settings = o.card_settings;
        return card_main(args, env);
    }
#endif
#ifdef CA_HAVE_LUKS
    if (cmd == "enroll" || cmd == "rotate") {
        std::vector<std::string> args = unrecognised;
        if (vm.count("help")) args.insert(args.begin(), "--help");
        return cmd == "enroll" ? enroll_main(args, o) : rotate_main(args, o);
    }
#endif
    if (external) return usage_error("'" + cmd + "' is not available in this build");
    return usage_error("unknown command '" + cmd + "'");
}

}  // namespace ca::agent
