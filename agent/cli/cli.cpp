// SPDX-License-Identifier: MIT
// The command line: split the command, build each command's options from the settings
// table, --help, dispatch (over 400 lines: the help text of every command lives here).
#include "agent/cli/cli.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "agent/cli/commands.hpp"
#include "agent/cli/json.hpp"
#include "agent/config/options.hpp"
#include "agent/daemon/server.hpp"
#include "agent/fault.hpp"
#include "agent/log.hpp"

#include "agent/cli/card_cli.hpp"
#include "agent/cli/luks_cli.hpp"

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

constexpr const char* kUsage = R"(Usage: crypt-agent [SETTINGS] COMMAND [COMMAND OPTIONS] [SETTINGS]

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
  card list|status|derive|watch   smartcard commands
  enroll VOLUME...      enrol volumes for smartcard keys
  rotate [VOLUME...]    rotate one-time keys
  config                print the effective settings (name = value, every setting)

Every command takes every setting, on the command line as --NAME VALUE and in the
configuration file (default /etc/crypt-agent.conf, or --config FILE) as
"NAME = VALUE"; the command line wins.  Run `crypt-agent COMMAND --help` for a
command's own options and the settings that concern it.
)";

const char* group_title(SettingGroup g) {
    switch (g) {
    case SettingGroup::common: return "Settings of every command";
    case SettingGroup::serve: return "serve settings";
    case SettingGroup::finish: return "finish settings";
    case SettingGroup::card: return "smartcard settings (serve, finish, enroll, rotate, card)";
    }
    return "settings";
}

// The settings of one group as command-line options, from the table.
po::options_description settings_description(SettingGroup g) {
    po::options_description d(group_title(g));
    for (const auto& s : settings()) {
        if (s.group != g) continue;
        if (s.repeatable)
            d.add_options()(s.name, po::value<std::vector<std::string>>()->value_name(s.placeholder)->composing(),
                            s.help);
        else d.add_options()(s.name, po::value<std::string>()->value_name(s.placeholder), s.help);
    }
    return d;
}

po::options_description general_options() {
    po::options_description d("General options");
    d.add_options()("help,h", "show help (for a command after its name)")("version", "show the version")(
        "config", po::value<std::string>()->value_name("FILE"), "configuration file (default /etc/crypt-agent.conf)");
    return d;
}

// A command's own options (not settings).
po::options_description command_options(const std::string& cmd, const std::string& sub) {
    po::options_description d(cmd + (sub.empty() ? "" : " " + sub) + " options");
    if (cmd == "list" || (cmd == "cache" && sub == "status") ||
        (cmd == "card" && (sub.empty() || sub == "list" || sub == "status"))) {
        // As systemd's tools: --json=short (one line), --json=pretty (indented), --json=off.
        d.add_options()("json", po::value<std::string>()->value_name("MODE")->implicit_value("short"),
                        "print JSON: short (one line, also plain --json), pretty (indented) or off (default); "
                        "fields in crypt-agent(8)");
    }
    if (cmd == "cache" && sub == "put") {
        d.add_options()("ttl", po::value<std::string>()->value_name("SECONDS"),
                        "lifetime of the cache from now (default: cache-lifetime, 15 min)");
        // --match is the setting's option; for `cache put` it restricts the secret (see help text).
    } else if (cmd == "enroll") {
        d.add_options()("passphrase-stdin", po::bool_switch(),
                        "read each volume's existing passphrase from stdin, one line each "
                        "(one line for all); without it, ask through ask-password in ask-dir")(
            "dry-run", po::bool_switch(), "show what would happen; change nothing")(
            "volume", po::value<std::vector<std::string>>()->value_name("VOLUME"),
            "LUKS volume: block device or image file");
    } else if (cmd == "rotate") {
        d.add_options()("dry-run", po::bool_switch(), "show what would happen; change nothing")(
            "volume", po::value<std::vector<std::string>>()->value_name("VOLUME"),
            "LUKS volume (default: the enrolled volumes in card-crypttab)");
    } else if (cmd == "card") {
        d.add_options()("uuid", po::value<std::vector<std::string>>()->value_name("UUID")->composing(),
                        "derive: a volume's LUKS UUID (repeatable)")("check-determinism", po::bool_switch(),
                                                                     "derive: send each challenge twice and compare")(
            "login", po::bool_switch(),
            "list: log in (PIN through ask-password) to list private keys a token hides before login");
    }
    return d;
}

// Everything a command line may hold: general options, the command's own, every setting.
po::options_description full_description(const std::string& cmd, const std::string& sub) {
    po::options_description d;
    d.add(general_options()).add(command_options(cmd, sub));
    for (auto g : {SettingGroup::common, SettingGroup::serve, SettingGroup::finish, SettingGroup::card})
        d.add(settings_description(g));
    return d;
}

// Options that take a value, so the command word can be found before parsing: read from
// the descriptions themselves, so a new option cannot be forgotten here.
std::set<std::string> valued_options() {
    std::set<std::string> out;
    // An option with an implicit value (--json) never takes the next word: `--json=MODE` only.
    for (const auto& [cmd, sub] : {std::pair{"cache", "put"}, {"enroll", ""}, {"rotate", ""}, {"card", ""}}) {
        const auto d = full_description(cmd, sub);
        for (const auto& opt : d.options())
            if (opt->semantic()->min_tokens() > 0) out.insert("--" + opt->long_name());
    }
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
        if (after_dashdash) {
            s.rest.push_back(a);
            continue;
        }
        if (a == "--") {
            after_dashdash = true;
            s.rest.push_back(a);
            continue;
        }
        if (!a.empty() && a[0] == '-') {
            s.rest.push_back(a);
            if (valued.count(a) && i + 1 < argc) s.rest.push_back(argv[++i]);
            continue;
        }
        const bool wants_sub = s.words.size() == 1 && (s.words[0] == "cache" || s.words[0] == "card");
        if (s.words.empty() || wants_sub) s.words.push_back(a);
        else s.rest.push_back(a);
    }
    return s;
}

int usage_error(const std::string& cmd, const std::string& what) {
    std::cerr << "crypt-agent" << (cmd.empty() ? "" : " " + cmd) << ": " << what << "\nTry 'crypt-agent "
              << (cmd.empty() ? "" : cmd + " ") << "--help'.\n";
    return 2;
}

// Applies command-line values through the same table as the file, so both take the same
// names.  `skip` names options that are not settings for this command.
std::optional<std::string> apply_cli(GlobalOptions& o, const po::variables_map& vm, const std::set<std::string>& skip) {
    SettingSource source;
    for (const auto& [name, value] : vm) {
        if (skip.count(name)) continue;
        const Setting* s = find_setting(name);
        if (!s) continue;  // general and command options
        if (s->repeatable) {
            for (const auto& v : value.as<std::vector<std::string>>())
                if (auto e = apply_setting(o, name, v, source)) return "--" + *e;
            continue;
        }
        if (auto e = apply_setting(o, name, value.as<std::string>(), source)) return "--" + *e;
    }
    return std::nullopt;
}

struct Help {
    const char* usage;
    const char* about;
    std::vector<SettingGroup> groups;
};

std::optional<Help> help_of(const std::string& cmd, const std::string& sub) {
    using G = SettingGroup;
    if (cmd == "serve")
        return Help{"crypt-agent serve [--phase initramfs|root] [--match GLOB]... [SETTINGS]",
                    "Answer ask-password questions until SIGTERM; SIGHUP re-reads the configuration.",
                    {G::serve, G::card, G::common}};
    if (cmd == "cache" && sub == "put")
        return Help{"crypt-agent cache put [--ttl SECONDS] [--match GLOB]... [SETTINGS] < SECRET",
                    "Cache one secret read from standard input (a terminal does not echo it).\n"
                    "Here --match GLOB restricts the Ids this secret may answer (default: every Id the agent answers).",
                    {G::common}};
    if (cmd == "cache")
        return Help{
            "crypt-agent cache put|flush [SETTINGS]\n       crypt-agent cache status [--json=MODE] [SETTINGS]",
            "  put     cache a secret from standard input\n  status  show counts, patterns and time left (never the "
            "secret)\n  flush   remove the keyring key and the fallback file",
            {G::common}};
    if (cmd == "list")
        return Help{"crypt-agent list [--json=MODE] [--ask-dir DIR] [SETTINGS]",
                    "Show pending questions: file, Id, asker PID (alive or dead), time left, message.",
                    {G::common}};
    if (cmd == "finish")
        return Help{
            "crypt-agent finish [--rotate-on-finish auto|yes|no] [SETTINGS]",
            "At the end of boot: remove every copy of the cache (keyring key, fallback file,\nsystemd's "
            "'cryptsetup' entry), stop running agents from storing it again, and\n(when a card is configured, "
            "or with --rotate-on-finish yes) rotate the one-time keys\nof the enrolled volumes in card-crypttab.",
            {G::finish, G::card, G::common}};
    if (cmd == "enroll")
        return Help{"crypt-agent enroll [--passphrase-stdin] [--dry-run] [SETTINGS] VOLUME...",
                    "Enrol LUKS volumes for keys derived from the smartcard: one card operation, a seed\nrecord per "
                    "volume (LUKS2 token, or a file in card-luks1-dir for LUKS1).",
                    {G::card, G::common}};
    if (cmd == "rotate")
        return Help{"crypt-agent rotate [--dry-run] [SETTINGS] [VOLUME...]",
                    "Rotate the one-time keys of enrolled volumes (default: those in card-crypttab).",
                    {G::card, G::common}};
    if (cmd == "card")
        return Help{
            "crypt-agent card list [--login] [--json=MODE] [SETTINGS]\n       crypt-agent card status [--json=MODE] "
            "[SETTINGS]\n       crypt-agent card watch [SETTINGS]\n"
            "       crypt-agent card derive --uuid UUID... "
            "[--check-determinism] --card-seed-file FILE [SETTINGS]",
            "  list    PC/SC readers, then the PKCS#11 module's tokens and keys with their URIs\n"
            "  status  readers, cards, ATR, application, PIN tries left (never spends a try);\n"
            "          with card-uri, the token and key it chooses (without logging in)\n"
            "  derive  print one passphrase per --uuid from the card's response to the seed\n"
            "  watch   log reader and card events until SIGTERM",
            {G::card, G::common}};
    if (cmd == "config")
        return Help{"crypt-agent config [--config FILE] [SETTINGS]",
                    "Print the effective settings, one 'name = value' per line (every setting; the\noutput is itself a "
                    "valid configuration file).",
                    {G::common, G::serve, G::finish, G::card}};
    return std::nullopt;
}

}  // namespace

int main_cli(int argc, char** argv) {
    try {
        return main_cli_unguarded(argc, argv);
    } catch (const std::exception& e) {
        // Start-up failures are exceptions; none may end in terminate() and a core.
        std::cerr << line_prefix(Level::err) << e.what() << "\n";
        return 1;
    }
}

int main_cli_unguarded(int argc, char** argv) {
    harden_process();
    init_logging(Level::info);
    const auto split = split_command(argc, argv);
    const std::string cmd = split.words.empty() ? "" : split.words[0];
    const std::string sub = split.words.size() > 1 ? split.words[1] : "";
    const std::string cmd_name = cmd + (sub.empty() ? "" : " " + sub);
    const bool takes_volumes = cmd == "enroll" || cmd == "rotate";
    set_log_command(cmd_name);

    const po::options_description desc = full_description(cmd, sub);
    po::positional_options_description positional;
    if (takes_volumes) positional.add("volume", -1);
    po::variables_map vm;
    try {
        auto parsed = po::command_line_parser(split.rest)
                          .options(desc)
                          .positional(positional)
                          .style(po::command_line_style::unix_style)
                          .run();
        for (const auto& opt : parsed.options)
            if (opt.position_key >= 0 && !takes_volumes) {
                const std::string& word = opt.value.front();
                return usage_error(
                    cmd_name, "unexpected argument '" + word + "'" +
                                  (parse_json_mode(word) ? " (to choose the JSON mode: --json=" + word + ")" : ""));
            }
        po::store(parsed, vm);
        po::notify(vm);
    } catch (const po::error& e) {
        return usage_error(cmd_name, e.what());
    }

    if (vm.count("version")) {
        std::cout << "crypt-agent " << CRYPT_AGENT_VERSION << "\n";
        // Tests look for this line to know the hooks are there (else they exit 77).
        if (fault::compiled_in) std::cout << "test build: fault injection hooks compiled in (never ship this binary)\n";
        return 0;
    }
    if (vm.count("help")) {
        const auto h = help_of(cmd, sub);
        if (!h) {
            std::cout << kUsage << "\n" << general_options() << "\n" << settings_description(SettingGroup::common);
            return cmd.empty() ? 0 : usage_error("", "unknown command '" + cmd + "'");
        }
        std::cout << "Usage: " << h->usage << "\n\n" << h->about << "\n\n";
        const auto own = command_options(cmd, sub);
        if (!own.options().empty()) std::cout << own << "\n";
        for (auto g : h->groups) std::cout << settings_description(g) << "\n";
        std::cout << general_options();
        return 0;
    }
    if (cmd.empty()) return usage_error("", "no command given");
    if (!help_of(cmd, sub) && cmd != "cache") return usage_error("", "unknown command '" + cmd + "'");
    JsonMode json = JsonMode::off;
    if (vm.count("json")) {
        const auto& mode = vm["json"].as<std::string>();
        const auto parsed = parse_json_mode(mode);
        if (!parsed)
            return usage_error(cmd_name, "--json: unknown mode '" + mode + "' (expected short, pretty or off)");
        json = *parsed;
    }

    GlobalOptions o;
    if (vm.count("config")) {
        o.config_file = vm["config"].as<std::string>();
        o.config_file_explicit = true;
    }
    if (auto err = load_config_file(o)) {
        std::cerr << "crypt-agent " << cmd_name << ": " << err->describe() << "\n";
        return 2;
    }
    // For `cache put`, --match restricts the secret, not the agent.
    const std::set<std::string> skip = cmd == "cache" && sub == "put" ? std::set<std::string>{"match"}
                                                                      : std::set<std::string>{};
    if (auto err = apply_cli(o, vm, skip)) return usage_error(cmd_name, *err);
    set_log_level(o.log_level);
    route_library_log(o.log_level);

    if (cmd == "config") {
        std::cout << describe_settings(o);
        return 0;
    }
    // Askers drop answers whose sender is not uid 0, and the cache lives in root's keyring:
    // as another user these commands could only mislead ("nothing cached").
    if ((cmd == "serve" || cmd == "cache" || cmd == "finish") && ::geteuid() != 0) {
        std::cerr << "crypt-agent " << cmd_name
                  << ": must run as root (askers accept answers only from root; the cache is in root's keyring)\n";
        return 1;
    }
    if (cmd == "serve") {
        // SIGHUP: the same order as at start (defaults, the file, the command line), so the
        // command line keeps winning over the file.
        Reload reload = [vm, skip, base = o](GlobalOptions& out) -> std::optional<std::string> {
            GlobalOptions fresh;
            fresh.config_file = base.config_file;
            fresh.config_file_explicit = base.config_file_explicit;
            if (auto err = load_config_file(fresh)) return err->describe();
            if (auto err = apply_cli(fresh, vm, skip)) return *err;
            out = std::move(fresh);
            return std::nullopt;
        };
        return run_serve(o, std::move(reload));
    }
    if (cmd == "list") return cmd_list(o, json);
    if (cmd == "finish") return cmd_finish(o);
    if (cmd == "cache") {
        if (sub == "put") {
            CachePutArgs a;
            if (vm.count("ttl")) {
                GlobalOptions tmp;
                SettingSource src;
                if (auto e = apply_setting(tmp, "cache-lifetime", vm["ttl"].as<std::string>(), src))
                    return usage_error(cmd_name, "--ttl: " + *e);
                a.ttl = tmp.cache_lifetime;
            }
            if (vm.count("match")) a.match = vm["match"].as<std::vector<std::string>>();
            return cmd_cache_put(o, a);
        }
        if (sub == "status") return cmd_cache_status(o, json);
        if (sub == "flush") return cmd_cache_flush(o);
        return usage_error("cache", sub.empty() ? "needs put, status or flush" : "unknown cache command '" + sub + "'");
    }
    if (cmd == "card") {
        CardArgs a;
        a.command = sub;
        if (vm.count("uuid")) a.uuids = vm["uuid"].as<std::vector<std::string>>();
        a.check_determinism = vm.count("check-determinism") && vm["check-determinism"].as<bool>();
        a.login = vm.count("login") && vm["login"].as<bool>();
        a.json = json;
        if (sub.empty()) return usage_error("card", "needs list, status, derive or watch");
        return card_main(a, o);
    }
    if (takes_volumes) {
        LuksArgs a;
        if (vm.count("volume")) a.volumes = vm["volume"].as<std::vector<std::string>>();
        a.dry_run = vm["dry-run"].as<bool>();
        if (cmd == "enroll") {
            a.passphrase_stdin = vm["passphrase-stdin"].as<bool>();
            return enroll_main(a, o);
        }
        return rotate_main(a, o);
    }
    return usage_error("", "unknown command '" + cmd + "'");
}

}  // namespace ca::agent
