// SPDX-License-Identifier: MIT
#include "agent/commands.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "agent/askdir/files.hpp"
#include "agent/cache/store.hpp"
#include "agent/sources/card_source.hpp"
#include "agent/clock.hpp"
#include "agent/log.hpp"
#include "agent/luks_cli.hpp"
#include "proto/hex.hpp"

namespace ca::agent {

void touch_ask_dir(const GlobalOptions& o) { (void)::utimensat(AT_FDCWD, o.ask_dir.c_str(), nullptr, AT_SYMLINK_NOFOLLOW); }

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
        if (n < 0) { err = errno; break; }
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
    if (buf.contains_byte(0)) return proto::unexpected(std::string("the secret contains a NUL byte, which no passphrase can hold"));
    return buf;
}

int cmd_cache_put(const GlobalOptions& o, const CachePutArgs& a) {
    // 2048 = what fits in one reply beside the '+'.
    auto secret = read_secret_stdin(2048, "Secret to cache: ");
    if (!secret) { CA_LOG(err) << "cache put: " << secret.error(); return 1; }
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
    if (!where) { CA_LOG(err) << "cache put: " << where.error(); return 1; }
    touch_ask_dir(o);
    std::cout << (replaced ? "updated" : "cached") << " 1 secret in the " << to_string(*where)
              << (*where == StoreKind::keyring ? std::string(" (") + to_string(o.keyring) + " keyring)" : " " + store.file_path())
              << "; " << p.candidates.size() << " candidate(s), " << (p.expires_us - now) / 1000000 << " s left\n";
    return 0;
}

int cmd_cache_status(const GlobalOptions& o) {
    CacheStore store(o);
    auto r = store.load();
    if (!r.warning.empty()) CA_LOG(warning) << "cache: " << r.warning;
    if (store.finished()) std::cout << "finish has run this boot\n";
    if (!r.payload) {
        std::cout << (r.expired ? "the cache had expired and was removed\n" : "nothing cached\n");
        return 0;
    }
    const auto now = boottime_us();
    std::cout << "store:      " << to_string(*r.from)
              << (*r.from == StoreKind::keyring ? std::string(" (") + to_string(o.keyring) + " keyring, key '" + kCacheKeyName + "')" : " " + store.file_path())
              << "\ncandidates: " << r.payload->candidates.size()
              << "\ntime left:  " << (r.payload->expires_us - now) / 1000000 << " s\n";
    unsigned n = 0;
    for (const auto& c : r.payload->candidates) {
        std::string pats;
        for (const auto& p : c.patterns) pats += (pats.empty() ? "" : ",") + p;
        std::cout << "  #" << ++n << " from " << proto::to_string(c.origin) << ", " << c.value.size() << " bytes, answers "
                  << (pats.empty() ? "the configured Ids" : pats) << (c.opened ? ", opened a volume" : "")
                  << ", sent to " << c.sent_to.size() << " Id(s), rejected by " << c.rejected_by.size() << "\n";
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
    if (!r.errors.empty()) { CA_LOG(err) << "cache flush: could not remove: " << r.errors; return 1; }
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
                   << (r.file ? "removed" : "absent") << ", systemd entry " << (r.systemd_entry ? "removed" : "absent") << ")";
    int status = 0;
    if (!r.errors.empty()) { CA_LOG(err) << "finish: could not remove: " << r.errors; status = 1; }
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

int cmd_list(const GlobalOptions& o) {
    Fd dir(::open(o.ask_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) {
        if (errno == ENOENT) { std::cout << "no questions (" << o.ask_dir.string() << " does not exist)\n"; return 0; }
        CA_LOG(err) << o.ask_dir.string() << ": " << std::strerror(errno);
        return 1;
    }
    Fd dup(::fcntl(dir.get(), F_DUPFD_CLOEXEC, 3));
    DIR* d = ::fdopendir(dup.get());
    if (d == nullptr) { CA_LOG(err) << o.ask_dir.string() << ": " << std::strerror(errno); return 1; }
    dup.release();
    std::vector<std::string> names;
    while (dirent* de = ::readdir(d))
        if (is_question_name(de->d_name)) names.emplace_back(de->d_name);
    ::closedir(d);
    std::sort(names.begin(), names.end());
    const auto now = monotonic_us();
    unsigned shown = 0;
    for (const auto& nm : names) {
        struct stat st{};
        if (fstatat(dir.get(), nm.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        auto f = read_ask_file(dir.get(), nm.c_str(), st.st_uid);
        ++shown;
        if (!f) { std::cout << nm << "  (unreadable: " << f.error().reason << ")\n"; continue; }
        const auto& q = f->q;
        std::string left = "no deadline";
        if (q.has_deadline()) left = q.not_after_us > now ? std::to_string((q.not_after_us - now) / 1000000) + " s left" : "expired";
        std::cout << nm << "  Id=" << q.id.value_or("(none)") << "  PID " << q.pid << (pid_alive(q.pid) ? " alive" : " dead")
                  << "  " << left << (q.accept_cached ? "" : "  AcceptCached=0") << (q.echo ? "  Echo=1" : "")
                  << "\n    " << q.message.value_or("(no message)") << "\n";
    }
    if (shown == 0) std::cout << "no questions in " << o.ask_dir.string() << "\n";
    return 0;
}

}  // namespace ca::agent
