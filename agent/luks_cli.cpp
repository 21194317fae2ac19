// g++ 12 -O2 reports false "potential null pointer dereference" warnings
// inside Asio's headers (pulled in by the PIN asker); silence them first.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include "agent/luks_cli.hpp"

#include <boost/program_options.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cstdio>
#include <iostream>
#include <optional>

#include "agent/card_source.hpp"
#include "agent/crypttab.hpp"
#include "agent/options.hpp"
#include "agent/pin_asker.hpp"
#include "smartcard/blocking.hpp"

namespace ca::agent {
namespace po = boost::program_options;
namespace {

// card-luks1-dir from the configuration and the command line: the default of --luks1-store.
std::string& luks1_default() {
    static std::string dir = luks::StoreOptions{}.luks1_dir;
    return dir;
}

void take_store_settings(const GlobalOptions& globals) {
    for (const auto& [name, value] : globals.card_settings)
        if (name == "card-luks1-dir") luks1_default() = value;
}

CardOpener& card_opener() {
    static CardOpener opener;
    return opener;
}

enum Exit { kAllDone = 0, kSomeFailed = 1, kUsage = 2 };

// Progress on a terminal; priority-prefixed lines for the journal otherwise.
class Reporter final : public luks::Progress {
public:
    explicit Reporter(std::string command) : command_(std::move(command)), tty_(::isatty(2) == 1) {}

    void step(const std::string& volume, const std::string& what) override {
        if (tty_) std::fprintf(stderr, "  %s: %s...\n", volume.c_str(), what.c_str());
    }

    void line(int priority, const std::string& text) const {
        if (tty_) std::fprintf(stderr, "%s\n", text.c_str());
        else std::fprintf(stderr, "<%d>crypt-agent %s: %s\n", priority, command_.c_str(), text.c_str());
    }

    int summarise(const std::vector<luks::VolumeOutcome>& outcomes, int card_operations) const {
        int failed = 0;
        for (const auto& o : outcomes) {
            for (const auto& note : o.notes) line(5, o.path + ": " + note);
            line(o.ok ? 5 : 3, o.path + ": " + o.summary);
            failed += o.ok ? 0 : 1;
        }
        line(failed ? 4 : 6, std::to_string(outcomes.size() - static_cast<std::size_t>(failed)) + " of " +
                                 std::to_string(outcomes.size()) + " volumes done, " + std::to_string(failed) +
                                 " failed; card operations: " + std::to_string(card_operations));
        return failed ? kSomeFailed : kAllDone;
    }

private:
    std::string command_;
    bool tty_;
};

struct CommonOptions {
    std::vector<std::string> volumes;
    bool dry_run = false;
    bool passphrase_stdin = false;
    std::string crypttab = "/etc/crypttab";
    std::string reader;
    bool no_pin = false;
    double card_wait_s = 30;
    bool help = false;
    luks::StoreOptions store;
};

po::options_description common_description(CommonOptions& o) {
    po::options_description d("options");
    d.add_options()
        ("dry-run", po::bool_switch(&o.dry_run), "show what would happen; change nothing")
        ("luks1-store", po::value(&o.store.luks1_dir)->default_value(o.store.luks1_dir),
         "directory of LUKS1 seed records (must be readable in the initramfs)")
        ("lock-dir", po::value(&o.store.lock_dir)->default_value(o.store.lock_dir),
         "directory for per-volume run locks")
        ("reader", po::value(&o.reader), "substring of the smartcard reader's name (default: any reader)")
        ("card-wait", po::value(&o.card_wait_s)->default_value(o.card_wait_s), "seconds to wait for a card")
        ("no-pin", po::bool_switch(&o.no_pin), "the card needs no PIN (never send VERIFY)")
        ("help", po::bool_switch(&o.help), "show this help")
        ("volume", po::value(&o.volumes), "LUKS volume: block device or image file");
    return d;
}

std::optional<CommonOptions> parse(const std::vector<std::string>& args, bool is_enroll) {
    CommonOptions o;
    o.store.luks1_dir = luks1_default();
    po::options_description d = common_description(o);
    if (is_enroll)
        d.add_options()("passphrase-stdin", po::bool_switch(&o.passphrase_stdin),
                        "read each volume's existing passphrase from stdin, one line each "
                        "(one line for all); without it, ask through systemd-ask-password");
    else
        d.add_options()("crypttab", po::value(&o.crypttab)->default_value(o.crypttab),
                        "with no VOLUME: rotate every enrolled volume listed here");
    po::positional_options_description pos;
    pos.add("volume", -1);
    try {
        po::variables_map vm;
        po::store(po::command_line_parser(args).options(d).positional(pos).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::fprintf(stderr, "crypt-agent %s: %s\n", is_enroll ? "enroll" : "rotate", e.what());
        return std::nullopt;
    }
    if (o.help) {
        std::cout << (is_enroll ? "crypt-agent enroll [options] VOLUME...\n"
                                : "crypt-agent rotate [options] [VOLUME...]\n")
                  << d;
    } else if (o.card_wait_s <= 0) {
        std::fprintf(stderr, "crypt-agent: --card-wait must be positive\n");
        return std::nullopt;
    }
    return o;
}

// Only volumes with a crypt-agent record: the others are not ours to rotate.
std::vector<std::string> enrolled_volumes(const std::vector<std::string>& candidates,
                                          const luks::StoreOptions& store) {
    std::vector<std::string> out;
    for (const auto& path : candidates) {
        auto seeds = luks::candidates_for_volume(path, store);
        if (seeds && !seeds->generations.empty()) out.push_back(path);
    }
    return out;
}

// Reads stdin into locked memory and splits it into lines (trailing newline stripped).
std::vector<proto::Secret> read_passphrases() {
    proto::Secret all;
    unsigned char buf[512];
    for (;;) {
        const ssize_t n = ::read(0, buf, sizeof buf);
        if (n <= 0) break;
        all.append(std::span<const unsigned char>(buf, static_cast<std::size_t>(n)));
    }
    proto::wipe(buf, sizeof buf);
    std::vector<proto::Secret> lines;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= all.size(); ++i) {
        if (i < all.size() && all.data()[i] != '\n') continue;
        if (i > start || i < all.size())
            lines.push_back(proto::Secret::copy_of(all.bytes().subspan(start, i - start)));
        start = i + 1;
    }
    return lines;
}

// The real card through the smartcard layer: one private loop per card
// operation, the PIN (when the profile needs one) asked through ask-password.
std::optional<luks::CardAccess> real_card(const CommonOptions& o, const GlobalOptions& globals, bool enrolling) {
    // The card-* settings of serve (file and command line); this command's own flags win.
    CardSourceConfig settings;
    for (const auto& [name, value] : globals.card_settings)
        if (auto why = apply_card_setting(settings, name, value)) {
            std::fprintf(stderr, "crypt-agent: %s: %s\n", name.c_str(), why->c_str());
            return std::nullopt;
        }
    smartcard::BlockingOptions b;
    b.card = settings.card;
    if (!o.reader.empty()) b.card.reader_filter = o.reader;
    if (o.no_pin) b.card.profile.pin_reference.reset();
    b.wait_for_card = std::chrono::milliseconds(static_cast<long>(o.card_wait_s * 1000));
    const std::filesystem::path ask_dir = globals.ask_dir;
    const std::chrono::seconds pin_timeout = settings.pin_timeout;
    b.pin = [ask_dir, pin_timeout](boost::asio::io_context& io) -> std::unique_ptr<smartcard::PinPrompt> {
        return std::make_unique<PinAsker>(io, PinAskerOptions{ask_dir, pin_timeout, 0});
    };
    b.notice = [](const smartcard::Notice& n) {
        const int prio = n.severity == smartcard::Notice::error ? 3 : n.severity == smartcard::Notice::warning ? 4 : 6;
        std::fprintf(stderr, "<%d>crypt-agent: smartcard: %s\n", prio, n.text.c_str());
    };
    luks::CardAccess card;
    card.profile_id = b.card.profile.name;
    // The seed is as long as the profile's challenge (card-challenge-length).
    card.new_seed = [options = b.card](const std::vector<unsigned char>& like) {
        return smartcard::fresh_seed(options, like);
    };
    if (b.card.pkcs11) {
        card.profile_id = std::string(proto::kSeedKindPkcs11);
        card.key_uri = b.card.pkcs11->uri;
    }
    if (b.card.pkcs11 && enrolling) {
        // The key's type decides the first seed (an EC key's is a point on its
        // curve), and the record names the key.  Asked without a login, on this
        // thread, with a module finalized before any card operation loads its own.
        // (Rotation shapes new seeds like the recorded ones and needs no module
        // here: `finish` rotates from the boot's responses with the token gone.)
        unsigned ec_bits = 0;
        auto module = smartcard::Pkcs11Module::load(*b.card.pkcs11);
        if (!module) {
            std::fprintf(stderr, "crypt-agent: %s\n", module.error().message.c_str());
            return std::nullopt;
        }
        auto key = (*module)->describe_key();
        module->reset();
        if (key) {
            if (!key->usable) {
                std::fprintf(stderr, "crypt-agent: the key %s (%s) cannot be used: %s\n", key->uri.c_str(),
                             key->type_text().c_str(), key->why_not.c_str());
                return std::nullopt;
            }
            if (key->kind == smartcard::KeyKind::ec) ec_bits = key->bits;
            if (b.card.pkcs11->uri == "auto") card.key_uri = key->uri;
        } else if (key.error().code != smartcard::Errc::bad_profile) {
            std::fprintf(stderr, "crypt-agent: %s\n", key.error().message.c_str());
            return std::nullopt;
        }
        const smartcard::CardOptions options = b.card;
        card.new_seed = [options, ec_bits](const std::vector<unsigned char>& like) {
            if (like.empty() && ec_bits) return smartcard::make_ec_seed(ec_bits);
            return smartcard::fresh_seed(options, like);
        };
    }
    card.challenge = smartcard::make_challenge_fn(b, false);
    card.batch = [b](const std::vector<std::vector<unsigned char>>& seeds, bool check_determinism) {
        return smartcard::responses_blocking(b, seeds, check_determinism);
    };
    return card;
}

// Asks for a volume's existing passphrase through systemd-ask-password, so the
// terminal, Plymouth or any password agent can answer.  The reply comes back on
// a pipe: never in argv or the environment.
std::optional<proto::Secret> ask_existing_passphrase(const std::string& volume) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
        std::fprintf(stderr, "crypt-agent enroll: pipe: %s\n", std::strerror(errno));
        return std::nullopt;
    }
    const std::string id = "--id=crypt-agent:enroll:" + volume;
    const std::string prompt = "Existing passphrase for " + volume + " (crypt-agent enrolment):";
    const char* argv[] = {"systemd-ask-password", id.c_str(), prompt.c_str(), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    pid_t pid = -1;
    const int spawned = ::posix_spawnp(&pid, argv[0], &actions, nullptr, const_cast<char* const*>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (spawned != 0) {
        ::close(out[0]);
        std::fprintf(stderr, "crypt-agent enroll: cannot run systemd-ask-password: %s; "
                             "give the passphrase with --passphrase-stdin\n", std::strerror(spawned));
        return std::nullopt;
    }
    proto::Secret pass;
    unsigned char buf[256];
    for (;;) {
        const ssize_t n = ::read(out[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        pass.append(std::span<const unsigned char>(buf, static_cast<std::size_t>(n)));
    }
    proto::wipe(buf, sizeof buf);
    ::close(out[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "crypt-agent enroll: no passphrase for %s (systemd-ask-password failed or timed out)\n",
                     volume.c_str());
        return std::nullopt;
    }
    if (!pass.empty() && pass.data()[pass.size() - 1] == '\n') pass.truncate(pass.size() - 1);
    return pass;
}

std::optional<luks::CardAccess> open_card(const CommonOptions& o, const GlobalOptions& globals, bool enrolling) {
    if (!card_opener()) return real_card(o, globals, enrolling);
    auto card = card_opener()(o.reader, std::string());
    if (!card) {
        std::fprintf(stderr, "crypt-agent: cannot use the card: %s\n", card.error().message.c_str());
        return std::nullopt;
    }
    return std::move(*card);
}

}  // namespace

void set_card_opener(CardOpener opener) { card_opener() = std::move(opener); }

int run_enroll(const std::vector<std::string>& args, luks::CardAccess& card) {
    auto o = parse(args, true);
    if (!o) return kUsage;
    if (o->help) return kAllDone;
    if (o->volumes.empty()) {
        std::fprintf(stderr, "crypt-agent enroll: name at least one VOLUME\n");
        return kUsage;
    }
    std::vector<proto::Secret> passphrases;
    if (o->passphrase_stdin) {
        passphrases = read_passphrases();
    } else {
        for (const auto& volume : o->volumes) {
            auto pass = ask_existing_passphrase(volume);
            if (!pass) return kUsage;
            passphrases.push_back(std::move(*pass));
        }
    }
    if (passphrases.size() != 1 && passphrases.size() != o->volumes.size()) {
        std::fprintf(stderr, "crypt-agent enroll: stdin gave %zu passphrases for %zu volumes "
                             "(give one for all, or one line per volume)\n",
                     passphrases.size(), o->volumes.size());
        return kUsage;
    }
    luks::ResponseCache responses(card);
    Reporter reporter("enroll");
    luks::RunOptions opts{o->dry_run, o->store, {}};
    auto outcomes = luks::enroll(o->volumes, passphrases, responses, opts, reporter);
    return reporter.summarise(outcomes, responses.card_operations());
}

int run_rotate(const std::vector<std::string>& args, luks::CardAccess& card, const std::vector<unsigned char>& new_seed) {
    auto o = parse(args, false);
    if (!o) return kUsage;
    if (o->help) return kAllDone;
    std::vector<std::string> volumes = o->volumes;
    if (volumes.empty()) {
        volumes = enrolled_volumes(crypttab_sources(o->crypttab), o->store);
        if (volumes.empty()) {
            std::fprintf(stderr, "crypt-agent rotate: no enrolled volume in %s; nothing to do\n",
                         o->crypttab.c_str());
            return kAllDone;
        }
    }
    luks::ResponseCache responses(card);
    Reporter reporter("rotate");
    luks::RunOptions opts{o->dry_run, o->store, new_seed};
    auto outcomes = luks::rotate(volumes, responses, opts, reporter);
    return reporter.summarise(outcomes, responses.card_operations());
}

int enroll_main(const std::vector<std::string>& args, const GlobalOptions& globals) {
    take_store_settings(globals);
    auto o = parse(args, true);
    if (!o) return kUsage;
    if (o->help) return kAllDone;
    auto card = open_card(*o, globals, true);
    if (!card) return kUsage;
    return run_enroll(args, *card);
}

int rotate_main(const std::vector<std::string>& args, const GlobalOptions& globals) {
    return rotate_main(args, globals, RememberedResponses{});
}

int rotate_main(const std::vector<std::string>& args, const GlobalOptions& globals, RememberedResponses remembered) {
    take_store_settings(globals);
    auto o = parse(args, false);
    if (!o) return kUsage;
    if (o->help) return kAllDone;
    auto card = open_card(*o, globals, false);
    if (!card) return kUsage;
    if (remembered.next_seed.empty()) return run_rotate(args, *card);
    // The remembered responses first; the card only for a seed the boot did not see.
    auto known = std::make_shared<RememberedResponses>(std::move(remembered));
    luks::CardAccess wrapped;
    wrapped.profile_id = card->profile_id;
    wrapped.remembered = [known](const std::vector<unsigned char>& seed) { return known->responses.count(seed) != 0; };
    wrapped.challenge = [known, real = card->challenge](std::span<const unsigned char> seed)
        -> smartcard::Expected<proto::Secret> {
        if (auto it = known->responses.find(std::vector<unsigned char>(seed.begin(), seed.end()));
            it != known->responses.end())
            return it->second.clone();
        return real(seed);
    };
    wrapped.batch = [known, real = card->batch](const std::vector<std::vector<unsigned char>>& seeds, bool check)
        -> smartcard::Expected<std::vector<proto::Secret>> {
        std::vector<std::vector<unsigned char>> missing;
        for (const auto& s : seeds)
            if (check || !known->responses.count(s)) missing.push_back(s);
        std::vector<proto::Secret> fetched;
        if (!missing.empty()) {
            if (!real) return smartcard::make_error(smartcard::Errc::internal, "no card access for a batch");
            auto r = real(missing, check);
            if (!r) return r;
            fetched = std::move(*r);
        }
        std::vector<proto::Secret> out;
        std::size_t next = 0;
        for (const auto& s : seeds) {
            if (!check)
                if (auto it = known->responses.find(s); it != known->responses.end()) { out.push_back(it->second.clone()); continue; }
            out.push_back(std::move(fetched[next++]));
        }
        return out;
    };
    return run_rotate(args, wrapped, known->next_seed);
}

}  // namespace ca::agent
