// SPDX-License-Identifier: MIT
// `enroll` and `rotate` (over 400 lines: both open the card and check volumes the same way,
// the helpers above them are shared; `finish` calls rotate_main with its typed options).

#include "agent/cli/luks_cli.hpp"

#include <boost/asio/io_context.hpp>

#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "agent/cli/card_wait.hpp"
#include "agent/cli/wait_line.hpp"
#include "agent/config/crypttab.hpp"
#include "agent/config/options.hpp"
#include "agent/log.hpp"
#include "agent/luks/volume.hpp"
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
        if (tty_) write_stderr_line("  " + volume + ": " + what + "...");
    }

    void line(int priority, const std::string& text) const {
        if (tty_) write_stderr_line(text);
        else write_stderr_line(line_prefix(static_cast<Level>(priority)) + text);
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
std::vector<std::string> enrolled_volumes(const std::vector<std::string>& candidates, const luks::StoreOptions& store) {
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
        if (i > start || i < all.size()) lines.push_back(proto::Secret::copy_of(all.bytes().subspan(start, i - start)));
        start = i + 1;
    }
    return lines;
}

// The card operations of a run that reached a card (the summary's "card operations: N"): a
// wait that ended without a card, or responses remembered from the boot, do not count.
struct CardUse {
    int operations = 0;
};

// smartcard::responses_blocking with the waits said (agent/cli/wait_line.hpp) and the operation
// counted when it reached a card.
smartcard::Expected<std::vector<proto::Secret>> responses_waiting(const smartcard::BlockingOptions& b,
                                                                  const std::vector<std::vector<unsigned char>>& seeds,
                                                                  bool check_determinism,
                                                                  std::chrono::seconds pin_timeout, CardUse& use) {
    const std::string what = card_wait_text(b.card);
    auto wait = std::make_shared<CardWait>(what, b.wait_for_card);
    smartcard::BlockingOptions opts = b;
    opts.notice = [wait, inner = b.notice](const smartcard::Notice& n) {
        wait->notice(n);
        if (inner) inner(n);
    };
    if (b.pin)
        opts.pin = [wait, make = b.pin,
                    pin_timeout](boost::asio::io_context& io) -> std::unique_ptr<smartcard::PinPrompt> {
            return std::make_unique<WaitingPinPrompt>(make(io), wait, pin_timeout);
        };
    auto r = smartcard::responses_blocking(opts, seeds, check_determinism);
    if (r) wait->found("the card answered");
    else if (!wait->card_seen) wait->line.end("stopped waiting for " + what + ": " + r.error().message);
    if (r || wait->card_seen) ++use.operations;
    return r;
}

// The real card through the smartcard layer, with the configured card settings
// (profile, reader, watchdog, PIN rules): one private loop per card operation,
// the PIN (when the profile needs one) asked through ask-password in ask-dir.
// `enrolling`: with PKCS#11, the key is looked at first (its type shapes the first seed).
std::optional<luks::CardAccess> real_card(const GlobalOptions& o, bool enrolling, const std::shared_ptr<CardUse>& use) {
    smartcard::BlockingOptions b;
    b.card = o.card.card;
    b.wait_for_card = o.card.wait;
    const PinAskerOptions ask{o.ask_dir, o.card.pin_timeout, 0};
    b.pin = [ask](boost::asio::io_context& io) -> std::unique_ptr<smartcard::PinPrompt> {
        return std::make_unique<PinAsker>(io, ask);
    };
    b.notice = [](const smartcard::Notice& n) {
        const int prio = n.severity == smartcard::Notice::error ? 3 : n.severity == smartcard::Notice::warning ? 4 : 6;
        if (log_enabled(static_cast<Level>(prio)))
            write_stderr_line(line_prefix(static_cast<Level>(prio)) + "smartcard: " + n.text);
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
            write_stderr_line(line_prefix(Level::err) + module.error().message);
            return std::nullopt;
        }
        auto key = (*module)->describe_key();
        module->reset();
        if (key) {
            if (!key->usable) {
                write_stderr_line(line_prefix(Level::err) + "the key " + key->uri + " (" + key->type_text() +
                                  ") cannot be used: " + key->why_not);
                return std::nullopt;
            }
            if (key->kind == smartcard::KeyKind::ec) ec_bits = key->bits;
            if (b.card.pkcs11->uri == "auto") card.key_uri = key->uri;
        } else if (key.error().code != smartcard::Errc::bad_profile) {
            write_stderr_line(line_prefix(Level::err) + key.error().message);
            return std::nullopt;
        }
        const smartcard::CardOptions options = b.card;
        card.new_seed = [options, ec_bits](const std::vector<unsigned char>& like) {
            if (like.empty() && ec_bits) return smartcard::make_ec_seed(ec_bits);
            return smartcard::fresh_seed(options, like);
        };
    }
    const auto pin_timeout = o.card.pin_timeout;
    card.batch = [b, use, pin_timeout](const std::vector<std::vector<unsigned char>>& seeds, bool check_determinism) {
        return responses_waiting(b, seeds, check_determinism, pin_timeout, *use);
    };
    card.challenge = [b, use, pin_timeout](std::span<const unsigned char> seed) -> smartcard::Expected<proto::Secret> {
        auto r = responses_waiting(b, {std::vector<unsigned char>(seed.begin(), seed.end())}, false, pin_timeout, *use);
        if (!r) return std::move(r).error();
        return std::move(r->front());
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
    const std::string id = "crypt-agent:enroll:" + volume;
    WaitLine wait("the existing passphrase of " + volume + " (asked through ask-password, Id " + id + ")",
                  std::chrono::duration_cast<std::chrono::milliseconds>(o.card.pin_timeout));
    asker.ask_text(id, "Existing passphrase for " + volume + " (crypt-agent enrolment):", "drive-harddisk",
                   [&pass, &why](smartcard::Expected<proto::Secret> r) {
                       if (r) pass = std::move(*r);
                       else why = r.error().message;
                   });
    io.run();
    wait.end(pass ? "passphrase for " + volume + " received" : "no passphrase for " + volume);
    if (!pass)
        write_stderr_line(line_prefix(Level::err) + "no passphrase for " + volume + ": " + why + " (asked in " +
                          o.ask_dir.string() + ")");
    return pass;
}

// An opener's card (a test's software card) reaches its card on every call that gives an
// answer or a card's own refusal.
bool reached(const smartcard::Error& e) {
    using smartcard::Errc;
    return e.code != Errc::no_service && e.code != Errc::no_reader && e.code != Errc::no_card &&
           e.code != Errc::cancelled && e.code != Errc::timeout;
}

std::optional<luks::CardAccess> open_card(const GlobalOptions& o, bool enrolling, const std::shared_ptr<CardUse>& use) {
    if (!card_opener()) return real_card(o, enrolling, use);
    auto card = card_opener()(o.card.card.reader_filter, o.card.card.profile.name);
    if (!card) {
        write_stderr_line(line_prefix(Level::err) + "cannot use the card: " + card.error().message);
        return std::nullopt;
    }
    luks::CardAccess counted = std::move(*card);
    if (counted.challenge)
        counted.challenge = [use, real = counted.challenge](std::span<const unsigned char> seed) {
            auto r = real(seed);
            if (r || reached(r.error())) ++use->operations;
            return r;
        };
    if (counted.batch)
        counted.batch = [use, real = counted.batch](const std::vector<std::vector<unsigned char>>& seeds, bool check) {
            auto r = real(seeds, check);
            if (r || reached(r.error())) ++use->operations;
            return r;
        };
    return counted;
}

luks::StoreOptions store_of(const GlobalOptions& o) {
    luks::StoreOptions store;
    store.luks1_dir = o.card.luks1_dir;
    store.lock_dir = o.cache_dir.string();  // run locks beside the cache (both /run/crypt-agent by default)
    return store;
}

// The checks that need no card, before any wait for one: the volume opens (a LUKS header
// libcryptsetup reads) and, unless nothing is written, its header can be written.  A
// volume that fails is reported like any failed volume; the others go on.
std::optional<luks::VolumeOutcome> check_volume(const std::string& path, bool dry_run) {
    auto vol = luks::Volume::open(path);
    luks::LuksStatus st = luks::Done{};
    if (!vol) st = proto::unexpected(vol.error());
    else if (!dry_run) st = vol->check_writable();
    if (st) return std::nullopt;
    luks::VolumeOutcome out;
    out.path = path;
    out.code = st.error().code;
    const std::string prefix = path + ": ";
    const std::string& m = st.error().message;
    out.summary = "failed: " + (m.rfind(prefix, 0) == 0 ? m.substr(prefix.size()) : m);
    return out;
}

// Keeps the volumes that pass check_volume; the others' outcomes go to `failed`, by index.
std::vector<std::string> usable_volumes(const std::vector<std::string>& volumes, bool dry_run,
                                        std::map<std::size_t, luks::VolumeOutcome>& failed) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < volumes.size(); ++i) {
        if (auto bad = check_volume(volumes[i], dry_run)) failed.emplace(i, std::move(*bad));
        else out.push_back(volumes[i]);
    }
    return out;
}

// The outcomes in the order the volumes were named.
std::vector<luks::VolumeOutcome> merge(std::size_t total, std::map<std::size_t, luks::VolumeOutcome> failed,
                                       std::vector<luks::VolumeOutcome> done) {
    std::vector<luks::VolumeOutcome> out;
    std::size_t next = 0;
    for (std::size_t i = 0; i < total; ++i) {
        if (auto it = failed.find(i); it != failed.end()) out.push_back(std::move(it->second));
        else if (next < done.size()) out.push_back(std::move(done[next++]));
    }
    return out;
}

}  // namespace

void set_card_opener(CardOpener opener) { card_opener() = std::move(opener); }

namespace {
void library_log(luks::LibraryMessage kind, std::string_view text, bool reported) {
    using K = luks::LibraryMessage;
    // An error our own message reports already is worth a line only when debugging.
    const Level l = kind == K::error    ? (reported ? Level::debug : Level::err)
                    : kind == K::normal ? Level::notice
                                        : Level::debug;
    if (!log_enabled(l)) return;
    BOOST_LOG_SEV(logger(), l) << "libcryptsetup: " << text;
}
}  // namespace

void route_library_log(Level log_level) { luks::set_library_log(library_log, log_level == Level::debug); }

static int run_enroll(const LuksArgs& a, const GlobalOptions& o, luks::CardAccess& card, const CardUse& use) {
    if (a.volumes.empty()) {
        write_stderr_line(line_prefix(Level::err) + "name at least one VOLUME");
        return kUsage;
    }
    // Before any passphrase or card: "not a LUKS device" comes at once.
    std::map<std::size_t, luks::VolumeOutcome> failed;
    const auto volumes = usable_volumes(a.volumes, a.dry_run, failed);
    std::vector<proto::Secret> passphrases;
    if (a.passphrase_stdin) {
        passphrases = read_passphrases();
        if (passphrases.size() != 1 && passphrases.size() != a.volumes.size()) {
            write_stderr_line(line_prefix(Level::err) + "stdin gave " + std::to_string(passphrases.size()) +
                              " passphrases for " + std::to_string(a.volumes.size()) +
                              " volumes (give one for all, or one line per volume)");
            return kUsage;
        }
        if (passphrases.size() > 1) {
            // One line per named volume: keep those of the volumes that go on.
            std::vector<proto::Secret> kept;
            for (std::size_t i = 0; i < a.volumes.size(); ++i)
                if (!failed.count(i)) kept.push_back(std::move(passphrases[i]));
            passphrases = std::move(kept);
        }
    } else {
        for (const auto& volume : volumes) {
            auto pass = ask_existing_passphrase(volume, o);
            if (!pass) return kUsage;
            passphrases.push_back(std::move(*pass));
        }
    }
    Reporter reporter;
    std::vector<luks::VolumeOutcome> done;
    if (!volumes.empty()) {
        luks::ResponseCache responses(card);
        luks::RunOptions opts{a.dry_run, store_of(o), {}};
        done = luks::enroll(volumes, passphrases, responses, opts, reporter);
    }
    return reporter.summarise(merge(a.volumes.size(), std::move(failed), std::move(done)), use.operations);
}

static int run_rotate(const LuksArgs& a, const GlobalOptions& o, luks::CardAccess& card, const CardUse& use,
                      const std::vector<unsigned char>& new_seed) {
    const auto store = store_of(o);
    std::vector<std::string> named = a.volumes;
    if (named.empty()) {
        named = enrolled_volumes(crypttab_sources(o.card.crypttab), store);
        if (named.empty()) {
            write_stderr_line(line_prefix(Level::notice) + "no enrolled volume in " + o.card.crypttab.string() +
                              "; nothing to do");
            return kAllDone;
        }
    }
    std::map<std::size_t, luks::VolumeOutcome> failed;
    const auto volumes = usable_volumes(named, a.dry_run, failed);
    Reporter reporter;
    std::vector<luks::VolumeOutcome> done;
    if (!volumes.empty()) {
        luks::ResponseCache responses(card);
        luks::RunOptions opts{a.dry_run, store, new_seed};
        done = luks::rotate(volumes, responses, opts, reporter);
    }
    return reporter.summarise(merge(named.size(), std::move(failed), std::move(done)), use.operations);
}

int enroll_main(const LuksArgs& a, const GlobalOptions& o) {
    if (a.volumes.empty()) {
        write_stderr_line(line_prefix(Level::err) + "name at least one VOLUME");
        return kUsage;
    }
    auto use = std::make_shared<CardUse>();
    auto card = open_card(o, true, use);
    if (!card) return kUsage;
    return run_enroll(a, o, *card, *use);
}

int rotate_main(const LuksArgs& a, const GlobalOptions& o, RememberedResponses remembered) {
    auto use = std::make_shared<CardUse>();
    auto card = open_card(o, false, use);
    if (!card) return kUsage;
    if (remembered.next_seed.empty()) return run_rotate(a, o, *card, *use, {});
    // The remembered responses first; the card only for a seed the boot did not see.
    auto known = std::make_shared<RememberedResponses>(std::move(remembered));
    luks::CardAccess wrapped;
    wrapped.profile_id = card->profile_id;
    wrapped.key_uri = card->key_uri;
    wrapped.new_seed = card->new_seed;
    wrapped.remembered = [known](const std::vector<unsigned char>& seed) { return known->responses.count(seed) != 0; };
    wrapped.challenge =
        [known, real = card->challenge](std::span<const unsigned char> seed) -> smartcard::Expected<proto::Secret> {
        if (auto it = known->responses.find(std::vector<unsigned char>(seed.begin(), seed.end()));
            it != known->responses.end())
            return it->second.clone();
        return real(seed);
    };
    wrapped.batch = [known, real = card->batch](const std::vector<std::vector<unsigned char>>& seeds,
                                                bool check) -> smartcard::Expected<std::vector<proto::Secret>> {
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
                if (auto it = known->responses.find(s); it != known->responses.end()) {
                    out.push_back(it->second.clone());
                    continue;
                }
            out.push_back(std::move(fetched[next++]));
        }
        return out;
    };
    return run_rotate(a, o, wrapped, *use, known->next_seed);
}

}  // namespace ca::agent
