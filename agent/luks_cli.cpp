// SPDX-License-Identifier: MIT

#include "agent/luks_cli.hpp"

#include <boost/asio/io_context.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cstdio>
#include <iostream>
#include <optional>

#include "agent/crypttab.hpp"
#include "agent/log.hpp"
#include "agent/options.hpp"
#include "agent/sources/pin_asker.hpp"
#include "proto/seed_token.hpp"
#include "smartcard/blocking.hpp"
#include "smartcard/pkcs11.hpp"
#include "smartcard/service.hpp"

namespace ca::agent {
namespace {

CardOpener& card_opener() {
    static CardOpener opener;
    return opener;
}

enum Exit { kAllDone = 0, kSomeFailed = 1, kUsage = 2 };

// Progress and plain summaries on a terminal; otherwise lines with line_prefix() (priority
// for the journal, "crypt-agent enroll: " elsewhere).
class Reporter final : public luks::Progress {
public:
    Reporter() : tty_(::isatty(2) == 1) {}

    void step(const std::string& volume, const std::string& what) override {
        if (tty_) std::fprintf(stderr, "  %s: %s...\n", volume.c_str(), what.c_str());
    }

    void line(int priority, const std::string& text) const {
        if (tty_) std::fprintf(stderr, "%s\n", text.c_str());
        else std::fprintf(stderr, "%s%s\n", line_prefix(static_cast<Level>(priority)).c_str(), text.c_str());
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
    bool tty_;
};

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

// The real card through the smartcard layer, with the configured card settings
// (profile, reader, watchdog, PIN rules): one private loop per card operation,
// the PIN (when the profile needs one) asked through ask-password in ask-dir.
// `enrolling`: with PKCS#11, the key is looked at first (its type shapes the first seed).
std::optional<luks::CardAccess> real_card(const GlobalOptions& o, bool enrolling) {
    smartcard::BlockingOptions b;
    b.card = o.card.card;
    b.wait_for_card = o.card.wait;
    const PinAskerOptions ask{o.ask_dir, o.card.pin_timeout, 0};
    b.pin = [ask](boost::asio::io_context& io) -> std::unique_ptr<smartcard::PinPrompt> {
        return std::make_unique<PinAsker>(io, ask);
    };
    b.notice = [](const smartcard::Notice& n) {
        const int prio = n.severity == smartcard::Notice::error ? 3 : n.severity == smartcard::Notice::warning ? 4 : 6;
        std::fprintf(stderr, "%ssmartcard: %s\n", line_prefix(static_cast<Level>(prio)).c_str(), n.text.c_str());
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
            std::fprintf(stderr, "crypt-agent enroll: %s\n", module.error().message.c_str());
            return std::nullopt;
        }
        auto key = (*module)->describe_key();
        module->reset();
        if (key) {
            if (!key->usable) {
                std::fprintf(stderr, "crypt-agent enroll: the key %s (%s) cannot be used: %s\n", key->uri.c_str(),
                             key->type_text().c_str(), key->why_not.c_str());
                return std::nullopt;
            }
            if (key->kind == smartcard::KeyKind::ec) ec_bits = key->bits;
            if (b.card.pkcs11->uri == "auto") card.key_uri = key->uri;
        } else if (key.error().code != smartcard::Errc::bad_profile) {
            std::fprintf(stderr, "crypt-agent enroll: %s\n", key.error().message.c_str());
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

// Asks for a volume's existing passphrase through the ask-password protocol in the
// configured ask directory (the agent asks as systemd-ask-password would, which
// knows only /run/systemd/ask-password), so the terminal, Plymouth or any password
// agent can answer.  Never in argv or the environment.
std::optional<proto::Secret> ask_existing_passphrase(const std::string& volume, const GlobalOptions& o) {
    boost::asio::io_context io;
    PinAsker asker(io, PinAskerOptions{o.ask_dir, o.card.pin_timeout, 0});
    std::optional<proto::Secret> pass;
    std::string why;
    asker.ask_text("crypt-agent:enroll:" + volume, "Existing passphrase for " + volume + " (crypt-agent enrolment):",
                   "drive-harddisk", [&pass, &why](smartcard::Expected<proto::Secret> r) {
                       if (r) pass = std::move(*r);
                       else why = r.error().message;
                   });
    io.run();
    if (!pass)
        std::fprintf(stderr, "crypt-agent enroll: no passphrase for %s: %s (asked in %s)\n", volume.c_str(),
                     why.c_str(), o.ask_dir.c_str());
    return pass;
}

std::optional<luks::CardAccess> open_card(const GlobalOptions& o, bool enrolling) {
    if (!card_opener()) return real_card(o, enrolling);
    auto card = card_opener()(o.card.card.reader_filter, o.card.card.profile.name);
    if (!card) {
        std::fprintf(stderr, "crypt-agent: cannot use the card: %s\n", card.error().message.c_str());
        return std::nullopt;
    }
    return std::move(*card);
}

luks::StoreOptions store_of(const GlobalOptions& o) {
    luks::StoreOptions store;
    store.luks1_dir = o.card.luks1_dir;
    store.lock_dir = o.cache_dir.string();  // run locks beside the cache (both /run/crypt-agent by default)
    return store;
}

}  // namespace

void set_card_opener(CardOpener opener) { card_opener() = std::move(opener); }

static int run_enroll(const LuksArgs& a, const GlobalOptions& o, luks::CardAccess& card) {
    if (a.volumes.empty()) {
        std::fprintf(stderr, "crypt-agent enroll: name at least one VOLUME\n");
        return kUsage;
    }
    std::vector<proto::Secret> passphrases;
    if (a.passphrase_stdin) {
        passphrases = read_passphrases();
    } else {
        for (const auto& volume : a.volumes) {
            auto pass = ask_existing_passphrase(volume, o);
            if (!pass) return kUsage;
            passphrases.push_back(std::move(*pass));
        }
    }
    if (passphrases.size() != 1 && passphrases.size() != a.volumes.size()) {
        std::fprintf(stderr, "crypt-agent enroll: stdin gave %zu passphrases for %zu volumes "
                             "(give one for all, or one line per volume)\n",
                     passphrases.size(), a.volumes.size());
        return kUsage;
    }
    luks::ResponseCache responses(card);
    Reporter reporter;
    luks::RunOptions opts{a.dry_run, store_of(o), {}};
    auto outcomes = luks::enroll(a.volumes, passphrases, responses, opts, reporter);
    return reporter.summarise(outcomes, responses.card_operations());
}

static int run_rotate(const LuksArgs& a, const GlobalOptions& o, luks::CardAccess& card,
               const std::vector<unsigned char>& new_seed) {
    const auto store = store_of(o);
    std::vector<std::string> volumes = a.volumes;
    if (volumes.empty()) {
        volumes = enrolled_volumes(crypttab_sources(o.card.crypttab), store);
        if (volumes.empty()) {
            std::fprintf(stderr, "crypt-agent rotate: no enrolled volume in %s; nothing to do\n",
                         o.card.crypttab.c_str());
            return kAllDone;
        }
    }
    luks::ResponseCache responses(card);
    Reporter reporter;
    luks::RunOptions opts{a.dry_run, store, new_seed};
    auto outcomes = luks::rotate(volumes, responses, opts, reporter);
    return reporter.summarise(outcomes, responses.card_operations());
}

int enroll_main(const LuksArgs& a, const GlobalOptions& o) {
    if (a.volumes.empty()) {
        std::fprintf(stderr, "crypt-agent enroll: name at least one VOLUME\n");
        return kUsage;
    }
    auto card = open_card(o, true);
    if (!card) return kUsage;
    return run_enroll(a, o, *card);
}

int rotate_main(const LuksArgs& a, const GlobalOptions& o, RememberedResponses remembered) {
    auto card = open_card(o, false);
    if (!card) return kUsage;
    if (remembered.next_seed.empty()) return run_rotate(a, o, *card, {});
    // The remembered responses first; the card only for a seed the boot did not see.
    auto known = std::make_shared<RememberedResponses>(std::move(remembered));
    luks::CardAccess wrapped;
    wrapped.profile_id = card->profile_id;
    wrapped.key_uri = card->key_uri;
    wrapped.new_seed = card->new_seed;
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
    return run_rotate(a, o, wrapped, known->next_seed);
}

}  // namespace ca::agent
