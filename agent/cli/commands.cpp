// SPDX-License-Identifier: MIT
#include "agent/cli/commands.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "agent/askdir/files.hpp"
#include "agent/cache/store.hpp"
#include "agent/cli/json.hpp"
#include "agent/cli/luks_cli.hpp"
#include "agent/clock.hpp"
#include "agent/log.hpp"
#include "agent/sources/card_source.hpp"
#include "proto/hex.hpp"

namespace ca::agent {

void touch_ask_dir(const GlobalOptions& o) {
    (void)::utimensat(AT_FDCWD, o.ask_dir.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
}

proto::Expected<proto::Secret, std::string> read_secret_stdin(std::size_t max, const char* prompt) {
    termios old{};
    const bool tty = ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        (void)::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        std::fputs(prompt, stderr);
        std::fflush(stderr);
    }
    proto::Secret buf(max + 1);
    std::size_t got = 0;
    int err = 0;
    while (got < buf.size()) {
        ssize_t n = ::read(STDIN_FILENO, buf.data() + got, buf.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
        if (tty && buf.data()[got - 1] == '\n') break;
    }
    if (tty) {
        (void)::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        std::fputc('\n', stderr);
    }
    if (err != 0) return proto::unexpected(std::string("cannot read standard input: ") + std::strerror(err));
    if (got > max) return proto::unexpected("the secret is longer than " + std::to_string(max) + " bytes");
    if (got > 0 && buf.data()[got - 1] == '\n') --got;
    if (got > 0 && buf.data()[got - 1] == '\r') --got;
    buf.truncate(got);
    if (buf.empty()) return proto::unexpected(std::string("no secret on standard input"));
    if (buf.contains_byte(0))
        return proto::unexpected(std::string("the secret contains a NUL byte, which no passphrase can hold"));
    return buf;
}

int cmd_cache_put(const GlobalOptions& o, const CachePutArgs& a) {
    // 2048 = what fits in one reply beside the '+'.
    auto secret = read_secret_stdin(2048, "Secret to cache: ");
    if (!secret) {
        CA_LOG(err) << "cache put: " << secret.error();
        return 1;
    }
    CacheStore store(o);
    if (store.finished()) {
        store.clear_finished();
        CA_LOG(notice) << "cache put: finish had run this boot; caching again as asked";
    }
    auto loaded = store.load();
    if (!loaded.warning.empty()) CA_LOG(warning) << "cache: " << loaded.warning;
    proto::CachePayload p;
    const auto now = boottime_us();
    const auto ttl = a.ttl.value_or(o.cache_lifetime);
    if (loaded.payload) {
        p = std::move(*loaded.payload);
        if (a.ttl) p.expires_us = now + static_cast<std::uint64_t>(ttl.count()) * 1000000ULL;
    } else {
        p.created_us = now;
        p.expires_us = now + static_cast<std::uint64_t>(ttl.count()) * 1000000ULL;
    }
    bool replaced = false;
    for (auto& c : p.candidates) {
        if (c.value.equals(*secret)) {
            c.patterns = a.match;
            c.added_us = now;
            replaced = true;
        }
    }
    if (!replaced) {
        if (p.candidates.size() >= proto::kCacheMaxCandidates) {
            CA_LOG(err) << "cache put: the cache already holds " << proto::kCacheMaxCandidates << " candidates";
            return 1;
        }
        proto::CachedCandidate c;
        c.value = std::move(*secret);
        c.origin = proto::Origin::put;
        c.added_us = now;
        c.patterns = a.match;
        p.candidates.push_back(std::move(c));
    }
    auto where = store.save(p);
    if (!where) {
        CA_LOG(err) << "cache put: " << where.error();
        return 1;
    }
    touch_ask_dir(o);
    std::cout << (replaced ? "updated" : "cached") << " 1 secret in the " << to_string(*where)
              << (*where == StoreKind::keyring ? std::string(" (") + to_string(o.keyring) + " keyring)"
                                               : " " + store.file_path())
              << "; " << p.candidates.size() << " candidate(s), " << (p.expires_us - now) / 1000000 << " s left\n";
    return 0;
}

namespace {

std::string hash_text(std::uint64_t h) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int k = 15; k >= 0; --k, h >>= 4) out[static_cast<std::size_t>(k)] = kHex[h & 0xfU];
    return out;
}

// Fields documented in crypt-agent(8), section JSON OUTPUT.  Counts, ages, patterns and
// the Ids' hashes as the cache stores them; never a candidate's value or its length.
void cache_status_json(const GlobalOptions& o, CacheStore& store, const LoadResult& r, JsonMode mode) {
    const auto now = boottime_us();
    const auto secs = [now](std::uint64_t then) { return now > then ? (now - then) / 1000000 : std::uint64_t{0}; };
    JsonWriter j(mode);
    j.begin_object()
        .field("finished", store.finished())
        .field("cached", r.payload.has_value())
        .field("expired", r.expired);
    const bool keyring = r.payload && *r.from == StoreKind::keyring;
    const bool file = r.payload && *r.from == StoreKind::file;
    j.key("store");
    if (r.payload) j.value(keyring ? "keyring" : "file");
    else j.null();
    j.key("keyring");
    if (keyring) j.value(to_string(o.keyring));
    else j.null();
    j.key("key_name");
    if (keyring) j.value(kCacheKeyName);
    else j.null();
    j.key("file");
    if (file) j.value(store.file_path());
    else j.null();
    if (!r.payload) {
        j.field("candidates", 0)
            .key("age_seconds")
            .null()
            .key("seconds_left")
            .null()
            .key("entries")
            .begin_array()
            .end_array()
            .end_object();
        std::cout << j.str();
        return;
    }
    const auto& p = *r.payload;
    j.field("candidates", p.candidates.size())
        .field("age_seconds", secs(p.created_us))
        .field("seconds_left", p.expires_us > now ? (p.expires_us - now) / 1000000 : std::uint64_t{0});
    j.key("entries").begin_array();
    for (const auto& c : p.candidates) {
        j.begin_object()
            .field("origin", proto::to_string(c.origin))
            .field("age_seconds", secs(c.added_us))
            .field("opened", c.opened);
        j.key("patterns").begin_array();
        for (const auto& pat : c.patterns) j.value(pat);
        j.end_array().key("sent_to").begin_array();
        for (auto h : c.sent_to) j.value(hash_text(h));
        j.end_array().key("rejected_by").begin_array();
        for (auto h : c.rejected_by) j.value(hash_text(h));
        j.end_array().end_object();
    }
    j.end_array().end_object();
    std::cout << j.str();
}

}  // namespace

int cmd_cache_status(const GlobalOptions& o, JsonMode mode) {
    CacheStore store(o);
    auto r = store.load();
    if (!r.warning.empty()) CA_LOG(warning) << "cache: " << r.warning;
    if (mode != JsonMode::off) {
        cache_status_json(o, store, r, mode);
        return 0;
    }
    if (store.finished()) std::cout << "finish has run this boot\n";
    if (!r.payload) {
        std::cout << (r.expired ? "the cache had expired and was removed\n" : "nothing cached\n");
        return 0;
    }
    const auto now = boottime_us();
    std::cout << "store:      " << to_string(*r.from)
              << (*r.from == StoreKind::keyring
                      ? std::string(" (") + to_string(o.keyring) + " keyring, key '" + kCacheKeyName + "')"
                      : " " + store.file_path())
              << "\ncandidates: " << r.payload->candidates.size()
              << "\ntime left:  " << (r.payload->expires_us - now) / 1000000 << " s\n";
    unsigned n = 0;
    for (const auto& c : r.payload->candidates) {
        std::string pats;
        for (const auto& p : c.patterns) pats += (pats.empty() ? "" : ",") + p;
        std::cout << "  #" << ++n << " from " << proto::to_string(c.origin) << ", " << c.value.size()
                  << " bytes, answers " << (pats.empty() ? "the configured Ids" : pats)
                  << (c.opened ? ", opened a volume" : "") << ", sent to " << c.sent_to.size() << " Id(s), rejected by "
                  << c.rejected_by.size() << "\n";
    }
    return 0;
}

namespace {
void print_flush(const FlushReport& r, bool systemd) {
    std::cout << "kernel keyring key: " << (r.keyring_key ? "removed" : "none") << "\n"
              << "tmpfs file:         " << (r.file ? "overwritten and removed" : "none") << "\n";
    if (systemd) std::cout << "systemd's entry:    " << (r.systemd_entry ? "removed" : "none") << "\n";
}
}  // namespace

int cmd_cache_flush(const GlobalOptions& o) {
    CacheStore store(o);
    auto r = store.flush(false);
    touch_ask_dir(o);
    print_flush(r, false);
    if (!r.errors.empty()) {
        CA_LOG(err) << "cache flush: could not remove: " << r.errors;
        return 1;
    }
    return 0;
}

namespace {

// The card responses the boot's card operation left in the cache (its card section):
// `finish` rotates to the fresh seed with them, without the card.
RememberedResponses remembered_responses(const proto::CachePayload& p) {
    RememberedResponses out;
    for (const auto& r : p.card_responses) {
        if (r.kind == proto::CardResponse::Kind::next) out.next_seed = r.seed;
        out.responses.insert_or_assign(r.seed, r.response.clone());
    }
    return out;
}

}  // namespace

int cmd_finish(const GlobalOptions& o) {
    CacheStore store(o);
    // What the rotation needs from the cache, before it is flushed.
    RememberedResponses remembered;
    if (auto loaded = store.load(); loaded.payload) remembered = remembered_responses(*loaded.payload);
    // Mark first: a running agent must not write the cache back after we flush it.
    store.mark_finished();
    auto r = store.flush(true);
    touch_ask_dir(o);
    print_flush(r, true);
    CA_LOG(notice) << "finish: cache flushed (keyring key " << (r.keyring_key ? "removed" : "absent") << ", file "
                   << (r.file ? "removed" : "absent") << ", systemd entry " << (r.systemd_entry ? "removed" : "absent")
                   << ")";
    int status = 0;
    if (!r.errors.empty()) {
        CA_LOG(err) << "finish: could not remove: " << r.errors;
        status = 1;
    }
    // Then make this boot's keys useless at the next: new seeds, new keyslots (one card operation).
    const bool card = o.card.enabled();
    const bool rotate = o.rotate_on_finish == GlobalOptions::Rotate::yes ||
                        (o.rotate_on_finish == GlobalOptions::Rotate::automatic && card);
    if (rotate) {
        CA_LOG(notice) << "finish: rotating the one-time keys of the enrolled volumes in " << o.card.crypttab.string();
        if (!remembered.next_seed.empty())
            CA_LOG(notice) << "finish: rotating to the seed the card answered during this boot's unlock "
                              "(no card or PIN needed now)";
        const int rc = rotate_main(LuksArgs{}, o, std::move(remembered));
        if (rc != 0) {
            CA_LOG(err) << "finish: rotation did not complete for every volume (status " << rc
                        << "); each volume still opens with its previous key, and the next run finishes the job";
            status = 1;
        }
    }
    return status;
}

namespace {

// One ask file as `list` shows it: the question, or why it could not be read.
struct Listed {
    std::string name;
    std::optional<proto::Question> q;
    std::string error;
};

void list_text(const GlobalOptions& o, const std::vector<Listed>& items, std::uint64_t now) {
    for (const auto& it : items) {
        if (!it.q) {
            std::cout << it.name << "  (unreadable: " << it.error << ")\n";
            continue;
        }
        const auto& q = *it.q;
        std::string left = "no deadline";
        if (q.has_deadline())
            left = q.not_after_us > now ? std::to_string((q.not_after_us - now) / 1000000) + " s left" : "expired";
        std::cout << it.name << "  Id=" << q.id.value_or("(none)") << "  PID " << q.pid
                  << (pid_alive(q.pid) ? " alive" : " dead") << "  " << left
                  << (q.accept_cached ? "" : "  AcceptCached=0") << (q.echo ? "  Echo=1" : "") << "\n    "
                  << q.message.value_or("(no message)") << "\n";
    }
    if (items.empty()) std::cout << "no questions in " << o.ask_dir.string() << "\n";
}

// Fields documented in crypt-agent(8), section JSON OUTPUT.
void list_json(const GlobalOptions& o, bool exists, const std::vector<Listed>& items, std::uint64_t now,
               JsonMode mode) {
    JsonWriter j(mode);
    j.begin_object()
        .field("ask_dir", o.ask_dir.string())
        .field("ask_dir_exists", exists)
        .key("questions")
        .begin_array();
    for (const auto& it : items) {
        j.begin_object().field("file", it.name);
        if (!it.q) {
            j.field("error", it.error).end_object();
            continue;
        }
        const auto& q = *it.q;
        j.field("id", q.id)
            .field("pid", q.pid)
            .field("pid_alive", pid_alive(q.pid))
            .field("socket", q.socket)
            .field("accept_cached", q.accept_cached)
            .field("echo", q.echo)
            .field("silent", q.silent);
        j.key("not_after_usec");
        if (q.has_deadline()) j.value(q.not_after_us);
        else j.null();
        j.key("seconds_left");
        if (q.has_deadline()) j.value(q.not_after_us > now ? (q.not_after_us - now) / 1000000 : std::uint64_t{0});
        else j.null();
        j.field("expired", q.has_deadline() && q.not_after_us <= now).field("message", q.message).field("icon", q.icon);
        j.end_object();
    }
    j.end_array().end_object();
    std::cout << j.str();
}

}  // namespace

int cmd_list(const GlobalOptions& o, JsonMode mode) {
    const bool json = mode != JsonMode::off;
    Fd dir(::open(o.ask_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) {
        if (errno == ENOENT) {
            // A fresh root before systemd made the directory: nothing asks yet.
            if (json) list_json(o, false, {}, 0, mode);
            else std::cout << "no questions (" << o.ask_dir.string() << " does not exist)\n";
            return 0;
        }
        CA_LOG(err) << "cannot open " << o.ask_dir.string() << ": " << std::strerror(errno);
        return 1;
    }
    Fd dup(::fcntl(dir.get(), F_DUPFD_CLOEXEC, 3));
    DIR* d = ::fdopendir(dup.get());
    if (d == nullptr) {
        CA_LOG(err) << "cannot read " << o.ask_dir.string() << ": " << std::strerror(errno);
        return 1;
    }
    dup.release();
    std::vector<std::string> names;
    while (dirent* de = ::readdir(d))
        if (is_question_name(de->d_name)) names.emplace_back(de->d_name);
    ::closedir(d);
    std::sort(names.begin(), names.end());
    const auto now = monotonic_us();
    std::vector<Listed> items;
    for (const auto& nm : names) {
        struct stat st {};
        if (fstatat(dir.get(), nm.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        auto f = read_ask_file(dir.get(), nm.c_str(), st.st_uid);
        if (f) items.push_back(Listed{nm, std::move(f->q), {}});
        else items.push_back(Listed{nm, std::nullopt, f.error().reason});
    }
    if (json) list_json(o, true, items, now, mode);
    else list_text(o, items, now);
    return 0;
}

}  // namespace ca::agent
