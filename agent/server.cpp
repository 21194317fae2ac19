// SPDX-License-Identifier: MIT
#include "agent/server.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <pthread.h>
#include <csignal>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "agent/clock.hpp"
#include "agent/commands.hpp"
#include "agent/fault.hpp"
#include "agent/keyring.hpp"
#include "agent/log.hpp"
#include "agent/notify.hpp"
#include "proto/glob.hpp"
#include "proto/reply.hpp"

namespace ca::agent {

namespace asio = boost::asio;

struct Server::Question {
    enum class State { waiting, answered, ignored, held };  // held: AnsweredLog's grace second
    explicit Question(asio::io_context& io) : timer(io) {}
    std::string name;
    ino_t ino = 0;
    off_t size = 0;  // of a file we could not use, to notice when it is rewritten
    time_t mtime_s = 0;
    long mtime_ns = 0;
    proto::Question q;
    std::string id;  // q.id or "" when missing
    State state = State::waiting;
    bool told_waiting = false;  // "no candidate yet" logged once
    bool retry = false;         // dropped for a transient reason (out of fds): read again on rescan
    std::vector<std::uint64_t> sent;
    AskIdentity key{};          // which question this is, for the AnsweredLog
    bool keyed = false;
    SocketIdentity sock{};      // the socket the reply went to
    asio::steady_timer timer;   // NotAfter, the EAGAIN back-off, or the grace of a held question
    unsigned backoff_ms = 0;
    Fd pending_target;          // socket to retry after EAGAIN
    std::size_t pending_first = 0;  // q.sent[pending_first..]: the candidates of that reply
};

namespace {

// The first n bytes of the one locked reply buffer are wiped when a send path leaves,
// whichever way it leaves.
struct WipeOnExit {
    proto::Secret& buf;
    std::size_t n;
    WipeOnExit(proto::Secret& b, std::size_t len) : buf(b), n(len) {}
    WipeOnExit(const WipeOnExit&) = delete;
    WipeOnExit& operator=(const WipeOnExit&) = delete;
    ~WipeOnExit() { proto::wipe(buf.data(), n); }
};

constexpr std::uint32_t kWatchMask = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_ATTRIB |
                                     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW;

// Names and Ids come from files anyone with root's ask directory writes: escaped, so one
// question is one log record whatever bytes they hold.
std::string quoted_id(const std::string& id) { return id.empty() ? std::string("(no Id)") : escaped(id); }

// The names of the questions, for the admin: "ask.XXXX (Id cryptsetup:/dev/vda2)".
std::string describe(const std::string& name, const std::string& id) { return escaped(name) + " (" + quoted_id(id) + ")"; }

std::vector<proto::Secret> split_nul_list(const proto::Secret& s) {
    std::vector<proto::Secret> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s.data()[i] == 0) {
            if (i > start) out.push_back(proto::Secret::copy_of(s.bytes().subspan(start, i - start)));
            start = i + 1;
        }
    }
    return out;
}

bool is_literal(const std::string& pattern) { return pattern.find_first_of("*?[\\") == std::string::npos; }

// A killed instance's newest record may be of a reply it never sent: how long its question must
// still be there, with nothing waiting on its socket, before it is answered.  An asker that got
// its reply removes its question at once (systemd-ask-password does, right after the read).
constexpr auto kUncertainGrace = std::chrono::seconds(1);

}  // namespace

Server::Server(asio::io_context& io, GlobalOptions options)
    : io_(io), o_(std::move(options)), store_(o_), owner_(geteuid()), rewatch_timer_(io), rescan_timer_(io),
      save_timer_(io), expiry_timer_(io) {
    unsigned char key[32];
    if (getrandom(key, sizeof key, 0) != static_cast<ssize_t>(sizeof key)) throw std::runtime_error("getrandom failed");
    std::memcpy(&k0_, key, 8);
    std::memcpy(&k1_, key + 8, 8);
    fp_ = std::make_unique<proto::FingerprintKey>(std::span<const unsigned char, 16>(key + 16, 16));
    proto::wipe(key, sizeof key);
}

Server::~Server() = default;

std::uint64_t Server::hash_of(const proto::Secret& s) const noexcept { return proto::siphash24(k0_, k1_, s.bytes()); }

std::optional<std::size_t> Server::index_of(std::uint64_t h) const noexcept {
    for (std::size_t i = 0; i < cache_hashes_.size(); ++i)
        if (cache_hashes_[i] == h) return i;
    return std::nullopt;
}

bool Server::id_matches(const std::string& id) const {
    return std::any_of(o_.match.begin(), o_.match.end(), [&](const std::string& p) { return proto::glob_match(p, id); });
}

// ---- start, stop ---------------------------------------------------------------------

void Server::start() {
    // Before anything reads it: a cache directory another user can write to would let them
    // stop every answer (a planted `finished`) or block us (a FIFO named `cache`).
    if (auto bad = store_.check_dir()) throw std::runtime_error(*bad);
    auto s = make_sender();
    if (!s) throw std::runtime_error(std::string("cannot create the reply socket: ") + std::strerror(s.error()));
    sender_ = std::move(*s);

    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ifd < 0) throw std::runtime_error(std::string("inotify_init1: ") + std::strerror(errno));
    inotify_ = std::make_unique<asio::posix::stream_descriptor>(io_, ifd);

    BootMemo memo;
    memo.put = [this](const std::string& key, proto::Secret value) { memo_put(key, std::move(value)); };
    memo.find = [this](const std::string& prefix) { return memo_find(prefix); };
    sources_ = make_sources(
        io_, o_, [this](const std::string& id, std::vector<proto::Secret> c) { on_source_delivery(id, std::move(c)); },
        std::move(memo));

    load_cache();
    if (auto w = answered_.open(o_.cache_dir); !w.empty())
        CA_LOG(warning) << "cannot record which questions were answered (" << w
                        << "); a restart of the agent may answer a pending question twice";
    else if (answered_.inherited_count() != 0)
        CA_LOG(debug) << answered_.inherited_count() << " record(s) of answered questions from an earlier instance in "
                      << answered_.path() << " (those of questions still asked are kept)";
    open_ask_dir();  // throws if the directory cannot be made or watched
    push_to_systemd();
    arm_watch();
    CA_LOG(notice) << "crypt-agent " << to_string(o_.phase) << " instance watching " << o_.ask_dir.string()
                   << " for Ids " << [&] {
                          std::string ids;
                          for (const auto& m : o_.match) ids += (ids.empty() ? "" : ", ") + m;
                          return ids;
                      }();
    // READY=1 waits for the sources' start-up work (card-early): units ordered
    // after us, systemd-cryptsetup through cryptsetup-pre.target, ask only then.
    for (auto& src : sources_)
        if (src->prefetch([this] { if (--early_pending_ == 0) announce_ready(); })) ++early_pending_;
    if (early_pending_ == 0) announce_ready();
    else sd_notify("STATUS=Waiting for the smartcard before systemd-cryptsetup asks");
    // A person may have typed before we started (a slow initramfs start): systemd has pushed
    // it already and its touch of the directory happened before our watch existed.
    harvest_systemd_entry();
    if (enter_dir()) {
        full_scan();
        dir_fd_.reset();
    }
}

void Server::announce_ready() {
    if (stopping_) return;
    sd_notify("READY=1\nSTATUS=Watching for questions");
}

void Server::stop() {
    if (stopping_) return;
    stopping_ = true;
    sd_notify("STOPPING=1");
    // Before switch-root: whatever was typed since our last look goes into the handed-over cache.
    harvest_systemd_entry();
    if (dirty_) save_now();
    answered_.confirm();
    for (auto& s : sources_) s->stop();
    boost::system::error_code ec;
    if (inotify_) inotify_->close(ec);
    rewatch_timer_.cancel();
    save_timer_.cancel();
    expiry_timer_.cancel();
    for (auto& [name, q] : questions_) q->timer.cancel();
    CA_LOG(notice) << "stopping: answered " << stats_.answered << " question(s), left " << stats_.ignored
                   << " to other agents";
}

void Server::reconfigure(GlobalOptions options) {
    const bool dir_changed = options.ask_dir != o_.ask_dir;
    o_.match = std::move(options.match);
    o_.log_level = options.log_level;
    o_.cache_lifetime = options.cache_lifetime;
    o_.harvest = options.harvest;
    o_.systemd_entry = options.systemd_entry;
    o_.push_systemd = options.push_systemd;
    set_log_level(o_.log_level);
    if (dir_changed) CA_LOG(warning) << "ask-dir cannot change while running; restart the agent to use " << options.ask_dir.string();
    CA_LOG(notice) << "configuration reloaded";
    // Questions ignored under the old patterns may be ours now.
    for (auto it = questions_.begin(); it != questions_.end();) {
        if (it->second->state == Question::State::ignored) it = questions_.erase(it);
        else ++it;
    }
    if (enter_dir()) {
        full_scan();
        dir_fd_.reset();
    }
}

// ---- the ask directory -------------------------------------------------------------------

void Server::open_ask_dir() {
    const auto& dir = o_.ask_dir;
    if (::mkdir(dir.c_str(), 0755) == 0) CA_LOG(info) << "created " << dir.string();
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        const int e = errno;
        throw std::runtime_error(dir.string() + ": cannot open the ask directory: " +
                                 (e == ELOOP || e == ENOTDIR ? std::string("it is not a directory (a symlink is refused)") : std::strerror(e)));
    }
    struct stat st{};
    if (fstat(fd.get(), &st) < 0) throw std::runtime_error(dir.string() + ": " + std::strerror(errno));
    if (st.st_uid != owner_ || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        throw std::runtime_error(dir.string() + ": the ask directory must be owned by uid " + std::to_string(owner_) +
                                 " and writable by nobody else");
    const int wd = inotify_add_watch(inotify_->native_handle(), dir.c_str(), kWatchMask);
    if (wd < 0) throw std::runtime_error(dir.string() + ": inotify_add_watch: " + std::strerror(errno));
    watch_ = wd;
    // The directory is not kept open between wakes: an open descriptor would delay the
    // kernel's IN_DELETE_SELF until it is closed, and we would miss its removal.
    dir_st_ = st;
    have_dir_ = true;
    ask_dir_str_ = dir.string();
}

bool Server::enter_dir() {
    if (!have_dir_) return false;
    Fd fd(::open(o_.ask_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st{};
    if (!fd || fstat(fd.get(), &st) < 0 || st.st_dev != dir_st_.st_dev || st.st_ino != dir_st_.st_ino) {
        CA_LOG(warning) << o_.ask_dir.string() << " was replaced; watching the new directory";
        questions_.clear();
        rewatch_later();
        return false;
    }
    // Re-checked on every wake (a chmod is an IN_ATTRIB of the directory): anyone who can
    // write here can plant questions and sockets.  Answer nothing until it is safe again.
    if (st.st_uid != owner_ || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        if (!dir_unsafe_)
            CA_LOG(err) << o_.ask_dir.string() << " is now owned by uid " << st.st_uid << " with mode "
                        << [&] { char m[8]; std::snprintf(m, sizeof m, "%04o", static_cast<unsigned>(st.st_mode & 07777)); return std::string(m); }()
                        << "; not answering anything there until it is owned by uid " << owner_
                        << " and writable by nobody else";
        dir_unsafe_ = true;
        return false;
    }
    if (dir_unsafe_) {
        CA_LOG(notice) << o_.ask_dir.string() << " is safe again; answering questions there";
        dir_unsafe_ = false;
    }
    dir_fd_ = std::move(fd);
    return true;
}

void Server::arm_watch() {
    inotify_->async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
        if (ec || stopping_) return;
        on_inotify();
        if (!stopping_) arm_watch();
    });
}

int Server::inotify_dir_fd() {
    if (!dir_fd_) dir_fd_.reset(::open(o_.ask_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    return dir_fd_.get();
}

void Server::on_inotify() {
    // Drain everything queued, then act: the events are a doorbell plus hints.
    alignas(inotify_event) char buf[64 * 1024];
    bool rescan = false, lost_dir = false, dir_touched = false;
    std::vector<std::pair<std::string, bool>> names;  // name, appeared (true) or went (false)
    for (;;) {
        ssize_t n = ::read(inotify_->native_handle(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) CA_LOG(err) << "reading inotify events failed: " << std::strerror(errno) << "; rescanning";
            break;
        }
        if (n == 0) break;
        for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
            inotify_event ev;
            std::memcpy(&ev, buf + off, sizeof ev);  // aligned copy of the header
            const char* name = buf + off + sizeof(inotify_event);
            off += static_cast<ssize_t>(sizeof(inotify_event) + ev.len);
            if (ev.mask & IN_Q_OVERFLOW) { rescan = true; continue; }
            if (ev.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) { lost_dir = true; continue; }
            if (ev.len == 0) {
                if (ev.mask & IN_ATTRIB) dir_touched = true;
                continue;
            }
            std::string nm(name, strnlen(name, ev.len));
            if (!is_question_name(nm)) continue;
            if (ev.mask & (IN_DELETE | IN_MOVED_FROM)) names.emplace_back(std::move(nm), false);
            else if (ev.mask & IN_CREATE) {
                // A regular file created under its final name is still being written: wait
                // for IN_CLOSE_WRITE.  Anything else (symlink, FIFO, directory) is judged now.
                struct stat st{};
                if (fstatat(inotify_dir_fd(), nm.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode))
                    names.emplace_back(std::move(nm), true);
            } else if (ev.mask & (IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB)) names.emplace_back(std::move(nm), true);
        }
    }
    if (lost_dir) {
        dir_fd_.reset();
        CA_LOG(warning) << o_.ask_dir.string() << " was removed or moved; re-creating and watching it again";
        questions_.clear();
        rewatch_later();
        return;
    }
    dir_fd_.reset();
    const bool was_unsafe = dir_unsafe_;
    if (!enter_dir()) return;
    if (was_unsafe) rescan = true;  // questions that arrived meanwhile were not looked at
    struct Leave {
        Fd& fd;
        ~Leave() { fd.reset(); }
    } leave{dir_fd_};
    if (dir_touched) {
        // systemd touches the directory after pushing an answer into its keyring entry.
        load_cache();
        harvest_systemd_entry();
        push_to_systemd();
        revisit_waiting();
    }
    if (rescan) {
        if (!was_unsafe) CA_LOG(info) << "inotify queue overflowed; rescanning " << o_.ask_dir.string();
        full_scan();
        return;
    }
    bool someone_answered = false;
    for (auto& [nm, appeared] : names) {
        if (appeared) {
            process_name(nm, 0);
            continue;
        }
        auto it = questions_.find(nm);
        someone_answered = someone_answered || (it != questions_.end() && it->second->state == Question::State::waiting);
        forget(nm);
    }
    if (someone_answered) {
        // A question we could not answer is gone: a person (through another agent) probably
        // answered it, and systemd-cryptsetup has just pushed that answer into its keyring entry.
        harvest_systemd_entry();
        revisit_waiting();
    }
}

void Server::rewatch_later() {
    if (watch_ >= 0) (void)inotify_rm_watch(inotify_->native_handle(), watch_);
    watch_ = -1;
    dir_fd_.reset();
    have_dir_ = false;
    rewatch_timer_.expires_after(std::chrono::milliseconds(10));
    rewatch_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopping_) return;
        try {
            open_ask_dir();
            if (!rewatch_error_.empty()) {
                CA_LOG(notice) << "watching " << o_.ask_dir.string() << " again";
                rewatch_error_.clear();
            }
            if (enter_dir()) {
                full_scan();
                dir_fd_.reset();
            }
        } catch (const std::exception& e) {
            // Once per cause: a directory replaced by a symlink stays refused until a real one
            // comes back, and a line a second would bury everything else.
            if (rewatch_error_ != e.what())
                CA_LOG(err) << e.what() << "; nothing is answered there until it is a real directory again (checking every second)";
            rewatch_error_ = e.what();
            rewatch_timer_.expires_after(std::chrono::seconds(1));
            rewatch_timer_.async_wait([this](const boost::system::error_code& ec2) {
                if (!ec2 && !stopping_) rewatch_later();
            });
        }
    });
}

void Server::rescan_later() {
    if (rescan_armed_ || stopping_) return;
    rescan_armed_ = true;
    rescan_timer_.expires_after(std::chrono::milliseconds(100));
    rescan_timer_.async_wait([this](const boost::system::error_code& ec) {
        rescan_armed_ = false;
        if (ec || stopping_) return;
        if (enter_dir()) {
            full_scan();
            dir_fd_.reset();
        }
    });
}

void Server::full_scan() {
    if (!dir_fd_) return;

    Fd dup(::fcntl(dir_fd_.get(), F_DUPFD_CLOEXEC, 3));
    if (!dup) {
        if (!fd_pressure_logged_)
            CA_LOG(warning) << "cannot scan " << o_.ask_dir.string() << ": " << std::strerror(errno)
                            << "; retrying every 100 ms (raise LimitNOFILE= if this persists)";
        fd_pressure_logged_ = true;
        rescan_later();
        return;
    }
    DIR* d = ::fdopendir(dup.get());
    if (d == nullptr) { CA_LOG(err) << "cannot scan " << o_.ask_dir.string() << ": " << std::strerror(errno); return; }
    dup.release();
    if (fd_pressure_logged_) {
        CA_LOG(notice) << "file descriptors are available again; scanning " << o_.ask_dir.string();
        fd_pressure_logged_ = false;
    }
    ::rewinddir(d);
    std::unordered_set<std::string> present;
    std::vector<std::pair<std::string, ino_t>> found;
    while (dirent* de = ::readdir(d)) {
        std::string nm = de->d_name;
        if (!is_question_name(nm)) continue;
        present.insert(nm);
        found.emplace_back(std::move(nm), de->d_ino);
    }
    ::closedir(d);
    for (auto it = questions_.begin(); it != questions_.end();) {
        if (!present.count(it->first)) {
            auto name = it->first;
            ++it;
            forget(name);
        } else {
            ++it;
        }
    }
    answered_.keep_only(static_cast<std::uint64_t>(dir_st_.st_dev), found);  // bounded: records of gone questions go
    const auto skipped_before = stats_.skipped;
    for (auto& [nm, ino] : found) process_name(nm, ino);
    if (stats_.skipped != skipped_before)
        CA_LOG(notice) << (stats_.skipped - skipped_before) << " pending question(s) had already been answered "
                       << "(before a restart, or before the directory was replaced); not answering them again";
}

// ---- one question -------------------------------------------------------------------------

void Server::process_name(const std::string& name, ino_t hint_ino) {
    auto it = questions_.find(name);
    if (it != questions_.end()) {
        struct stat st{};
        if (hint_ino == 0 || it->second->state == Question::State::ignored) {
            if (fstatat(dir_fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return;
            hint_ino = st.st_ino;
        }
        // Seen already, unless a file we could not use has been written to since.
        const bool rewritten = it->second->state == Question::State::ignored &&
                               (st.st_size != it->second->size || st.st_mtim.tv_nsec != it->second->mtime_ns ||
                                st.st_mtim.tv_sec != it->second->mtime_s);
        if (it->second->ino == hint_ino && !rewritten && !it->second->retry) return;
        forget(name);  // same name, new or rewritten file
    }
    auto file = read_ask_file(dir_fd_.get(), name.c_str(), owner_);
    auto q = std::make_unique<Question>(io_);
    q->name = name;
    if (!file) {
        const auto& e = file.error();
        if (e.kind == AskFileError::vanished) return;
        if (e.kind == AskFileError::no_fds) {
            // Out of file descriptors (a low RLIMIT_NOFILE, or another process holding
            // them): nothing is wrong with the question.  Leave it unrecorded and rescan soon.
            if (!fd_pressure_logged_)
                CA_LOG(warning) << escaped(name) << ": " << e.reason << "; will retry (raise LimitNOFILE= if this persists)";
            fd_pressure_logged_ = true;
            rescan_later();
            return;
        }
        struct stat st{};
        if (fstatat(dir_fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            q->ino = st.st_ino;
            q->size = st.st_size;
            q->mtime_s = st.st_mtim.tv_sec;
            q->mtime_ns = st.st_mtim.tv_nsec;
        }
        q->state = Question::State::ignored;
        ++stats_.ignored;
        CA_LOG(warning) << escaped(name) << ": " << e.reason << ", ignoring";
        questions_.emplace(name, std::move(q));
        return;
    }
    q->ino = file->ino;
    q->q = std::move(file->q);
    q->id = q->q.id.value_or(std::string());
    q->key = ask_identity(dir_st_.st_dev, name, file->ino, file->ctime);
    q->keyed = true;
    auto& ref = *q;
    questions_.emplace(name, std::move(q));
    if (answered_before(ref)) return;
    consider(ref);
}

void Server::consider(Question& q) {
    // Our own questions (a card's PIN, a passphrase for enrolment) are for a person: a cached
    // passphrase sent as a PIN would burn one of the card's tries.  Never, whatever --match says.
    if (q.id.rfind("crypt-agent:", 0) == 0) {
        q.state = Question::State::ignored;
        CA_LOG(debug) << describe(q.name, q.id) << ": the agent's own question, for a person";
        return;
    }
    if (!id_matches(q.id)) {
        q.state = Question::State::ignored;
        ++stats_.ignored;
        CA_LOG(info) << describe(q.name, q.id) << ": Id not configured to be answered, leaving it to other agents";
        return;
    }
    if (q.q.has_deadline() && monotonic_us() >= q.q.not_after_us) {
        q.state = Question::State::ignored;
        ++stats_.ignored;
        CA_LOG(info) << describe(q.name, q.id) << ": its deadline (NotAfter) has passed, ignoring";
        return;
    }
    if (asker_gone(q)) return;
    CA_LOG(debug) << describe(q.name, q.id) << ": new question from PID " << q.q.pid
                  << (q.q.accept_cached ? "" : " (AcceptCached=0)");
    prune_ids();
    auto& ids = ids_[proto::id_hash(q.id)];
    // Harvest before learning, so a passphrase just typed for another volume is known.  A
    // retry always looks; in a storm of first questions one look per 50 ms is enough, since
    // a push also wakes us (the directory is touched, the answered question goes away).
    const auto now = boottime_us();
    if (!q.q.accept_cached || now - last_harvest_us_ >= 50000) {
        last_harvest_us_ = now;
        harvest_systemd_entry();
    }
    if (!q.q.accept_cached) learn_from_retry(q, ids);
    ids.seen = true;
    ids.last_ask_us = now;
    answer_or_wait(q);
    if (q.state == Question::State::waiting) arm_deadline(q);
}

void Server::prune_ids() {
    // A boot has a handful of Ids; a long-running agent asked by many distinct Ids must not
    // grow without bound.  Past 2048, keep the 1024 most recently asking (with an open question
    // or not, what they learnt is what matters least for the oldest).
    constexpr std::size_t kHigh = 2048, kKeep = 1024;
    if (ids_.size() < kHigh) return;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> by_age;
    by_age.reserve(ids_.size());
    for (const auto& [id, st] : ids_) by_age.emplace_back(st.last_ask_us, id);
    std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(by_age.size() - kKeep), by_age.end());
    for (std::size_t i = 0; i < by_age.size() - kKeep; ++i) ids_.erase(by_age[i].second);
    CA_LOG(info) << "forgot the " << (by_age.size() - kKeep) << " least recently asking Ids (more than " << kHigh << ")";
}

bool Server::asker_gone(Question& q) {
    if (pid_alive(q.q.pid)) return false;
    q.state = Question::State::ignored;
    ++stats_.gone;
    CA_LOG(info) << describe(q.name, q.id) << ": asker PID " << q.q.pid << " is gone, ignoring";
    return true;
}

bool Server::answered_before(Question& q) {
    const auto* e = answered_.find(q.key);
    if (e == nullptr) return false;
    if (e->uncertain) {
        hold_uncertain(q);
        return true;
    }
    // Not learnt from again either: an AcceptCached=0 question was learnt from when answered.
    q.state = Question::State::answered;
    ++stats_.skipped;
    CA_LOG(notice) << describe(q.name, q.id) << ": already answered "
                   << (e->inherited ? "by the agent that ran before this one" : "by this agent") << "; not answering it twice";
    return true;
}

void Server::hold_uncertain(Question& q) {
    // The newest record of an instance that was killed: written before a send it may not have made.
    const auto* e = answered_.find(q.key);
    if (e == nullptr) { q.state = Question::State::waiting; consider(q); return; }
    const auto queued = socket_queue(e->sock);
    if (queued && *queued != 0) {
        answered_.settle(q.key);
        q.state = Question::State::answered;
        ++stats_.skipped;
        CA_LOG(notice) << describe(q.name, q.id) << ": the agent before this one was stopped while answering it; "
                       << "a reply waits on its socket, not answering it twice";
        return;
    }
    if (q.state != Question::State::held) {
        q.state = Question::State::held;
        CA_LOG(notice) << describe(q.name, q.id) << ": the agent before this one was stopped while answering it and "
                       << (queued ? "no reply waits on its socket" : "the kernel cannot tell whether a reply waits on its socket")
                       << "; answering it in " << kUncertainGrace.count() << " s unless it goes away";
        q.timer.expires_after(kUncertainGrace);
        const std::string name = q.name;
        q.timer.async_wait([this, name](const boost::system::error_code& ec) {
            if (ec || stopping_) return;
            auto it = questions_.find(name);
            if (it == questions_.end() || it->second->state != Question::State::held) return;
            hold_uncertain(*it->second);
        });
        return;
    }
    // Still asked a second later with nothing waiting: the reply was never sent.
    CA_LOG(notice) << describe(q.name, q.id) << ": still asked and no reply waits on its socket; answering it now";
    q.state = Question::State::waiting;
    consider(q);  // its send overwrites the uncertain record
}

void Server::learn_from_retry(Question& q, IdState& ids) {
    // AcceptCached=0 from systemd-cryptsetup means: what this volume was given last failed.
    std::size_t newly = 0;
    std::size_t excused = 0;
    // systemd's asker, asked with AcceptCached=1, watches its keyring entry as well as its
    // socket, and takes the entry when another volume's asker pushes into it first: then
    // what we sent was never read, and the failure was the other volume's passphrase.
    // Whatever an asker receives it pushes into the entry, so when none of what we sent
    // arrived there but another value did after this Id asked, what we sent was most
    // likely not tried: it is offered once more (once only, so a wrong key cannot loop).
    const auto pushed_since_ask = [this, &ids](std::uint64_t h) {
        auto it = entry_seen_us_.find(h);
        return it != entry_seen_us_.end() && it->second >= ids.last_ask_us;
    };
    const bool took_entry =
        ids.seen && o_.harvest && !o_.push_systemd &&
        std::none_of(ids.sent.begin(), ids.sent.end(), pushed_since_ask) &&
        std::any_of(entry_seen_us_.begin(), entry_seen_us_.end(),
                    [&](const auto& e) { return pushed_since_ask(e.first); });
    for (auto h : ids.sent) {
        if (took_entry && ids.excused.insert(h).second) {
            ++excused;
        } else if (ids.rejected.insert(h).second) {
            ++newly;
        }
        // It was taken for a success when the question went away; it was not one.
        if (auto i = index_of(h); i && cache_->candidates[*i].opened) {
            cache_->candidates[*i].opened = false;
        }
    }
    ids.sent.clear();
    if (cache_) {
        for (std::size_t i = 0; i < cache_->candidates.size(); ++i) {
            const auto& c = cache_->candidates[i];
            // A first question already marked AcceptCached=0: systemd silently tried its keyring
            // entry (which holds what was typed or harvested) and it failed.  On a later retry, what
            // was typed since this Id last asked is most likely what it was just given.
            const auto seen = in_systemd_entry_.find(cache_hashes_[i]);
            const bool typed = c.origin == proto::Origin::harvested || seen != in_systemd_entry_.end();
            const std::uint64_t when = seen != in_systemd_entry_.end() ? seen->second : c.added_us;
            const bool tried = !ids.seen ? typed : (typed && when > ids.last_ask_us);
            if (tried && ids.rejected.insert(cache_hashes_[i]).second) ++newly;
        }
    }
    if (excused != 0)
        CA_LOG(notice) << describe(q.name, q.id) << ": asked again, but its asker took systemd's keyring entry "
                       << "(another volume's passphrase) instead of our answer; offering " << excused
                       << " candidate(s) once more";
    if (newly != 0) {
        CA_LOG(notice) << describe(q.name, q.id) << ": asked again after a failed attempt; " << newly
                       << " candidate(s) will not be offered to it again";
        dirty_ = true;
        schedule_save();
    }
}

void Server::answer_or_wait(Question& q) {
    if (q.state != Question::State::waiting || dir_unsafe_) return;
    if (finished_) {
        if (!finished_logged_) CA_LOG(info) << "finish ran this boot; the cache is gone, leaving questions to other agents";
        finished_logged_ = true;
        if (cache_) { cache_.reset(); cache_hashes_.clear(); }
    }
    auto& ids = ids_[proto::id_hash(q.id)];
    std::vector<std::size_t> eligible;
    if (cache_) {
        for (std::size_t i = 0; i < cache_->candidates.size(); ++i) {
            const auto& c = cache_->candidates[i];
            const auto h = cache_hashes_[i];
            if (ids.rejected.count(h)) continue;
            if (std::find(q.sent.begin(), q.sent.end(), h) != q.sent.end()) continue;
            if (!c.patterns.empty() &&
                std::none_of(c.patterns.begin(), c.patterns.end(), [&](const std::string& p) { return proto::glob_match(p, q.id); }))
                continue;
            eligible.push_back(i);
        }
        // Most likely first: a key made for exactly this Id, then one that opened some
        // volume, then the newest (a passphrase just typed after a typo).
        auto rank = [&](std::size_t i) {
            const auto& c = cache_->candidates[i];
            const bool exact = std::any_of(c.patterns.begin(), c.patterns.end(),
                                           [&](const std::string& p) { return is_literal(p) && p == q.id; });
            return std::make_tuple(exact, c.opened, c.added_us);
        };
        std::stable_sort(eligible.begin(), eligible.end(), [&](std::size_t a, std::size_t b) { return rank(a) > rank(b); });
    }
    if (eligible.empty()) {
        // Once per Id: if what a source delivered was rejected, asking again would loop.
        if (!ids.asked_sources) {
            ids.asked_sources = true;
            for (auto& s : sources_) {
                if (s->handles(q.id)) {
                    CA_LOG(debug) << describe(q.name, q.id) << ": asking the " << s->name() << " source";
                    s->request(q.id);
                }
            }
        }
        if (!q.told_waiting) {
            q.told_waiting = true;
            CA_LOG(info) << describe(q.name, q.id) << ": no untried candidate for it"
                         << (cache_ ? "" : " (nothing cached)") << "; leaving it to other agents for now";
        }
        return;
    }
    send_to(q, std::move(eligible));
}

void Server::send_to(Question& q, std::vector<std::size_t> chosen) {
    std::vector<const proto::Secret*> ptrs;
    for (auto i : chosen) ptrs.push_back(&cache_->candidates[i].value);
    const auto fit = proto::candidates_that_fit(ptrs);
    if (fit == 0) {
        q.state = Question::State::ignored;
        CA_LOG(err) << describe(q.name, q.id) << ": no cached candidate fits in one reply (2049 bytes), ignoring";
        return;
    }
    ptrs.resize(fit);
    chosen.resize(fit);
    // One locked buffer serves every reply: no mmap/mlock/munlock/munmap per question.
    if (reply_buf_.size() < proto::kReplyMaxSize) reply_buf_ = proto::Secret(proto::kReplyMaxSize);
    auto len = proto::encode_reply_into(ptrs, reply_buf_.bytes());
    if (!len) {
        q.state = Question::State::ignored;
        CA_LOG(err) << describe(q.name, q.id) << ": cannot encode a reply: " << proto::to_string(len.error());
        return;
    }
    const WipeOnExit wipe_after{reply_buf_, *len};
    // The caller has just checked the asker's PID (consider, revisit_waiting); the send
    // itself tells us if it died since (ECONNREFUSED).
    struct stat sock_st{};
    auto target = resolve_socket(dir_st_, q.q.socket, owner_, dir_fd_.get(), ask_dir_str_, &sock_st);
    if (!target && (target.error().find("Too many open files") != std::string::npos)) {
        CA_LOG(warning) << describe(q.name, q.id) << ": " << target.error() << "; will retry";
        q.state = Question::State::ignored;
        q.retry = true;  // the rescan reads it again
        rescan_later();
        return;
    }
    if (!target) {
        q.state = Question::State::ignored;
        ++stats_.ignored;
        CA_LOG(warning) << describe(q.name, q.id) << ": " << target.error() << "; not sending anything there";
        return;
    }
    // Recorded before the send: a crash after it can never lead to a second reply (AnsweredLog).
    q.sock = SocketIdentity{static_cast<std::uint64_t>(sock_st.st_dev), static_cast<std::uint64_t>(sock_st.st_ino)};
    record_answer(q);
    fault::kill_at_send(false);
    int err = 0;
    const auto status = send_datagram(sender_.get(), target->get(), reply_buf_.bytes().first(*len), err);
    fault::kill_at_send(true);
    if (status != SendStatus::sent && q.keyed) answered_.erase(q.key);  // nothing delivered: no claim
    switch (status) {
        case SendStatus::sent: break;
        case SendStatus::gone:
            q.state = Question::State::ignored;
            ++stats_.gone;
            CA_LOG(debug) << describe(q.name, q.id) << ": asker gone (" << std::strerror(err) << ")";
            return;
        case SendStatus::refused:
            q.state = Question::State::ignored;
            ++stats_.ignored;
            CA_LOG(warning) << describe(q.name, q.id) << ": cannot send to its socket: " << std::strerror(err) << ", ignoring";
            return;
        case SendStatus::again:
            // The asker's receive queue is full: send the same candidates again later.  No copy of the reply per waiting question: locked memory is scarce (RLIMIT_MEMLOCK
            // 64 KiB), and a backlog of full sockets would take a locked page each.  The reply is
            // encoded again into the one locked buffer when the socket drains.
            q.pending_target = std::move(*target);
            q.pending_first = q.sent.size();
            for (auto i : chosen) q.sent.push_back(cache_hashes_[i]);
            q.state = Question::State::answered;
            retry_send_later(q);
            return;
    }
    auto& ids = ids_[proto::id_hash(q.id)];
    for (auto i : chosen) {
        q.sent.push_back(cache_hashes_[i]);
        ids.sent.insert(cache_hashes_[i]);
    }
    q.state = Question::State::answered;
    q.timer.cancel();
    ++stats_.answered;
    dirty_ = true;
    schedule_save();
    if (log_enabled(Level::info)) {
        std::string fps;  // keyed 4-hex fingerprints: tell candidates apart, reveal nothing
        for (auto i : chosen) fps += (fps.empty() ? "" : ",") + fp_->fingerprint(cache_->candidates[i].value);
        CA_LOG(info) << describe(q.name, q.id) << ": answered with " << chosen.size() << " candidate(s) [" << fps << "]";
    }
    if (stats_.answered % 64 == 1)
        sd_notify("STATUS=Answered " + std::to_string(stats_.answered) + " question(s)");
}

void Server::record_answer(Question& q) {
    if (!q.keyed) return;
    auto err = answered_.record(q.key, q.sock);
    if (err && !answered_warned_) {
        answered_warned_ = true;
        CA_LOG(warning) << "cannot record an answered question (" << *err
                        << "); answering anyway, but a restart may answer it twice";
    }
    if (answered_.evicted() && !evicted_warned_) {
        evicted_warned_ = true;
        CA_LOG(warning) << "more than " << AnsweredLog::kMaxSlots << " answered questions are still pending; "
                        << "the oldest records are given up (a restart may answer those twice)";
    }
}

void Server::retry_send_later(Question& q) {
    q.backoff_ms = q.backoff_ms == 0 ? 1 : std::min(q.backoff_ms * 2, 200u);
    q.timer.expires_after(std::chrono::milliseconds(q.backoff_ms));
    const std::string name = q.name;
    q.timer.async_wait([this, name](const boost::system::error_code& ec) {
        if (ec || stopping_) return;
        auto it = questions_.find(name);
        if (it == questions_.end()) return;
        auto& qq = *it->second;
        if (qq.q.has_deadline() && monotonic_us() >= qq.q.not_after_us) {
            CA_LOG(info) << describe(qq.name, qq.id) << ": deadline passed while its socket stayed full";
            qq.state = Question::State::ignored;
            qq.pending_target.reset();
            return;
        }
        std::vector<const proto::Secret*> ptrs;
        for (std::size_t k = qq.pending_first; k < qq.sent.size() && cache_; ++k)
            if (auto i = index_of(qq.sent[k])) ptrs.push_back(&cache_->candidates[*i].value);
        std::optional<std::size_t> len;
        if (!ptrs.empty() && ptrs.size() == qq.sent.size() - qq.pending_first)
            if (auto n = proto::encode_reply_into(ptrs, reply_buf_.bytes())) len = *n;
        if (!len) {
            CA_LOG(info) << describe(qq.name, qq.id) << ": its candidates left the cache while its socket stayed full";
            qq.state = Question::State::ignored;
            qq.pending_target.reset();
            return;
        }
        const WipeOnExit wipe_after{reply_buf_, *len};
        record_answer(qq);
        int err = 0;
        const auto status = send_datagram(sender_.get(), qq.pending_target.get(), reply_buf_.bytes().first(*len), err);
        if (status != SendStatus::sent && qq.keyed) answered_.erase(qq.key);
        switch (status) {
            case SendStatus::again: retry_send_later(qq); return;
            case SendStatus::sent: {
                auto& ids = ids_[proto::id_hash(qq.id)];
                for (auto h : qq.sent) ids.sent.insert(h);
                ++stats_.answered;
                dirty_ = true;
                schedule_save();
                CA_LOG(info) << describe(qq.name, qq.id) << ": answered after its socket drained";
                break;
            }
            default:
                CA_LOG(info) << describe(qq.name, qq.id) << ": asker gone before its socket drained";
                qq.state = Question::State::ignored;
                break;
        }
        qq.pending_target.reset();
    });
}

void Server::arm_deadline(Question& q) {
    if (!q.q.has_deadline()) return;
    q.timer.expires_at(deadline_of(q.q.not_after_us));
    const std::string name = q.name;
    q.timer.async_wait([this, name](const boost::system::error_code& ec) {
        if (ec || stopping_) return;
        auto it = questions_.find(name);
        if (it == questions_.end() || it->second->state != Question::State::waiting) return;
        it->second->state = Question::State::ignored;
        CA_LOG(info) << describe(name, it->second->id) << ": deadline reached without an answer from us";
    });
}

void Server::forget(const std::string& name) {
    auto it = questions_.find(name);
    if (it == questions_.end()) return;
    auto& q = *it->second;
    // The asker deleted its file.  If we answered with exactly one candidate and the same Id
    // does not come back with AcceptCached=0, that candidate worked: prefer it elsewhere.
    if (q.state == Question::State::answered && q.sent.size() == 1 && cache_) {
        if (auto idx = index_of(q.sent.front()); idx && !cache_->candidates[*idx].opened) {
            cache_->candidates[*idx].opened = true;
            dirty_ = true;
            schedule_save();
        }
    }
    if (q.keyed) answered_.release(q.key);  // its file is gone: its record's slot is free
    q.timer.cancel();
    questions_.erase(it);
}

void Server::revisit_waiting() {
    std::vector<Question*> waiting;
    for (auto& [name, q] : questions_)
        if (q->state == Question::State::waiting) waiting.push_back(q.get());
    for (auto* q : waiting) {
        if (!pid_alive(q->q.pid)) { q->state = Question::State::ignored; continue; }
        answer_or_wait(*q);
    }
}

// ---- the cache ----------------------------------------------------------------------------

void Server::load_cache() {
    finished_ = store_.finished();  // `finish` touches the ask directory, which brings us here
    if (finished_) {
        if (cache_) { cache_.reset(); cache_hashes_.clear(); CA_LOG(notice) << "finish ran: forgetting the cache"; }
        return;
    }
    auto r = store_.load();
    if (!r.warning.empty()) CA_LOG(warning) << "cache: " << r.warning;
    if (r.expired) CA_LOG(notice) << "the stored cache had reached its lifetime and was removed";
    if (!r.payload) {
        if (cache_ && !dirty_) {
            // Someone flushed the store (cache flush); follow it.
            CA_LOG(notice) << "the stored cache was removed; forgetting it";
            cache_.reset();
            cache_hashes_.clear();
        }
        return;
    }
    const bool first = !cache_;
    // Merge: the stored copy may come from `cache put` or the previous phase; keep our learning.
    if (!cache_) {
        cache_ = std::move(*r.payload);
        cache_hashes_.clear();
        for (const auto& c : cache_->candidates) cache_hashes_.push_back(hash_of(c.value));
    } else {
        cache_->expires_us = std::min(cache_->expires_us, r.payload->expires_us);
        for (auto& c : r.payload->candidates) {
            const auto h = hash_of(c.value);
            if (auto i = index_of(h)) {
                auto& mine = cache_->candidates[*i];
                mine.opened = mine.opened || c.opened;
                for (auto& id : c.rejected_by) ids_[id].rejected.insert(h);
                continue;
            }
            cache_hashes_.push_back(h);
            cache_->candidates.push_back(std::move(c));
        }
    }
    // Restore what earlier instances learnt, per Id.
    for (std::size_t i = 0; i < cache_->candidates.size(); ++i) {
        auto& c = cache_->candidates[i];
        for (auto& id : c.rejected_by) ids_[id].rejected.insert(cache_hashes_[i]);
        for (auto& id : c.sent_to) {
            auto& st = ids_[id];
            if (!st.rejected.count(cache_hashes_[i])) st.sent.insert(cache_hashes_[i]);
            st.seen = true;
        }
    }
    if (first) {
        const auto left = cache_->expires_us > boottime_us() ? (cache_->expires_us - boottime_us()) / 1000000 : 0;
        CA_LOG(info) << "cache loaded from the " << to_string(*r.from) << ": " << cache_->candidates.size()
                     << " candidate(s), " << left << " s left";
    }
    arm_cache_expiry();
}

void Server::ensure_cache() {
    if (cache_) return;
    cache_.emplace();
    cache_->created_us = boottime_us();
    cache_->expires_us = cache_->created_us + static_cast<std::uint64_t>(o_.cache_lifetime.count()) * 1000000ULL;
    cache_hashes_.clear();
    arm_cache_expiry();
}

void Server::add_candidate(proto::Secret value, proto::Origin origin, std::vector<std::string> patterns) {
    if (value.empty() || value.contains_byte(0)) return;
    ensure_cache();
    const auto h = hash_of(value);
    if (auto i = index_of(h)) {
        auto& c = cache_->candidates[*i];
        if (c.origin == proto::Origin::harvested || origin == proto::Origin::harvested) {
            c.added_us = boottime_us();  // typed again: most recent
        }
        return;
    }
    if (cache_->candidates.size() >= proto::kCacheMaxCandidates) {
        CA_LOG(warning) << "cache is full (" << proto::kCacheMaxCandidates << " candidates); dropping the oldest";
        cache_->candidates.erase(cache_->candidates.begin());
        cache_hashes_.erase(cache_hashes_.begin());
    }
    proto::CachedCandidate c;
    c.value = std::move(value);
    c.origin = origin;
    c.added_us = boottime_us();
    c.patterns = std::move(patterns);
    cache_->candidates.push_back(std::move(c));
    cache_hashes_.push_back(h);
    dirty_ = true;
    schedule_save();
}

void Server::harvest_systemd_entry() {
    if (!o_.harvest || finished_) return;
    auto id = keyring::find(o_.keyring, o_.systemd_key_name);
    if (!id) {
        in_systemd_entry_.clear();  // a later push of the same value is a new push
        return;                     // absent, the common case
    }
    auto payload = keyring::read(*id);
    if (!payload) {
        CA_LOG(warning) << "cannot read systemd's '" << o_.systemd_key_name << "' key: " << std::strerror(payload.error())
                        << " (the agent's session keyring must link the user keyring: KeyringMode=shared)";
        return;
    }
    std::size_t before = cache_ ? cache_->candidates.size() : 0;
    const auto now = boottime_us();
    auto list = split_nul_list(*payload);
    for (auto& s : list) {
        // When each value first appeared in systemd's entry: systemd tries the entry
        // silently before a volume's first question, and it holds what was just typed.
        // And when it last arrived there, kept after the entry goes (we clear it).
        if (in_systemd_entry_.try_emplace(hash_of(s), now).second) entry_seen_us_[hash_of(s)] = now;
        add_candidate(std::move(s), proto::Origin::harvested, {});
    }
    const std::size_t added = (cache_ ? cache_->candidates.size() : 0) - before;
    if (added != 0) {
        CA_LOG(notice) << "took " << added << " typed passphrase(s) from systemd's '" << o_.systemd_key_name
                       << "' keyring entry into the boot-scoped cache";
        save_now();
    }
    if (o_.systemd_entry == SystemdEntryPolicy::clear && !o_.push_systemd && !dirty_ && !left_out_) {
        // Only once our own copy is stored (a failed or partial save leaves systemd's entry
        // alone, or the typed passphrase would live only in our memory): systemd tries this entry silently before the first
        // question of every other volume, which with different passphrases or per-volume keys
        // burns a try and a slow PBKDF each time.  We answer those volumes ourselves.
        auto r = keyring::remove(o_.keyring, o_.systemd_key_name);
        if (r && *r) CA_LOG(info) << "cleared systemd's '" << o_.systemd_key_name << "' entry (systemd-entry=clear)";
    }
}

void Server::on_source_delivery(const std::string& id, std::vector<proto::Secret> candidates) {
    if (stopping_) return;
    const std::size_t n = candidates.size();
    for (auto& c : candidates) add_candidate(std::move(c), proto::Origin::card, {id});
    CA_LOG(info) << "received " << n << " candidate(s) for " << quoted_id(id);
    save_now();
    revisit_waiting();
}

void Server::memo_put(const std::string& key, proto::Secret value) {
    if (stopping_ || finished_) return;
    add_candidate(std::move(value), proto::Origin::card, {key});
    save_now();
}

std::vector<std::pair<std::string, proto::Secret>> Server::memo_find(const std::string& prefix) const {
    std::vector<std::pair<std::string, proto::Secret>> out;
    if (!cache_) return out;
    for (const auto& c : cache_->candidates)
        if (c.patterns.size() == 1 && c.patterns[0].rfind(prefix, 0) == 0) out.emplace_back(c.patterns[0], c.value.clone());
    return out;
}

void Server::schedule_save() {
    if (save_armed_ || stopping_) return;
    save_armed_ = true;
    // Coalesce: a storm of answers costs one keyring write per 20 ms, not one per answer.
    save_timer_.expires_after(std::chrono::milliseconds(20));
    save_timer_.async_wait([this](const boost::system::error_code& ec) {
        save_armed_ = false;
        if (!ec && dirty_) save_now();
    });
}

void Server::save_now() {
    answered_.confirm();  // the sends of the records written so far have returned
    if (!cache_) { dirty_ = false; return; }
    // Record per candidate what this boot learnt, so the next instance knows it.
    for (std::size_t i = 0; i < cache_->candidates.size(); ++i) {
        auto& c = cache_->candidates[i];
        c.sent_to.clear();
        c.rejected_by.clear();
    }
    for (const auto& [id, st] : ids_) {
        for (std::size_t i = 0; i < cache_->candidates.size(); ++i) {
            auto& c = cache_->candidates[i];
            const auto h = cache_hashes_[i];
            if (st.rejected.count(h) && c.rejected_by.size() < proto::kCacheMaxIdHashes) c.rejected_by.push_back(id);
            else if (st.sent.count(h) && c.sent_to.size() < proto::kCacheMaxIdHashes) c.sent_to.push_back(id);
        }
    }
    proto::CacheFit fit;
    auto r = store_.save(*cache_, &fit);
    push_to_systemd();
    if (!r) {
        // Still dirty: nothing here is stored, so systemd's entry is not cleared (harvest).
        CA_LOG(warning) << "cache not stored: " << r.error();
        return;
    }
    dirty_ = false;
    left_out_ = fit.candidates_left_out != 0;
    if (!fit.everything() && !fit_warned_) {
        fit_warned_ = true;
        CA_LOG(warning) << "the cache outgrew its key (" << proto::kCachePayloadMax << " bytes): stored without "
                        << fit.candidates_left_out << " candidate(s), " << fit.rejections_left_out << " rejection(s) and "
                        << fit.sends_left_out << " send(s) it learnt; the next instance may offer a key twice"
                        << (fit.candidates_left_out != 0 ? " (systemd's entry is kept)" : "");
    }
    static bool warned_file = false;
    if (*r == StoreKind::file && !warned_file) {
        warned_file = true;
        CA_LOG(warning) << "the kernel keyring is unavailable; the cache is kept in " << store_.file_path()
                        << " (tmpfs fallback)";
    }
}

void Server::push_to_systemd() {
    // push-systemd: put the candidates plausible for every volume (no Id restriction, not
    // rejected anywhere) into systemd's own entry, as systemd-cryptsetup would after an
    // answer, and touch the directory: askers already waiting with AcceptCached=1 re-read
    // the keyring on that touch, which closes the race where they started before us.
    if (!o_.push_systemd || !cache_ || finished_) return;
    std::vector<const proto::Secret*> plausible;
    for (std::size_t i = 0; i < cache_->candidates.size(); ++i) {
        const auto& c = cache_->candidates[i];
        if (!c.patterns.empty()) continue;
        const auto h = cache_hashes_[i];
        if (std::any_of(ids_.begin(), ids_.end(), [h](const auto& kv) { return kv.second.rejected.count(h) != 0; }))
            continue;
        plausible.push_back(&c.value);
    }
    if (plausible.empty()) return;
    std::size_t total = 0;
    for (const auto* p : plausible) total += p->size() + 1;
    proto::Secret list(total - 1);
    std::size_t off = 0;
    for (const auto* p : plausible) {
        if (off != 0) list.data()[off++] = 0;
        std::memcpy(list.data() + off, p->data(), p->size());
        off += p->size();
    }
    if (pushed_hash_ == hash_of(list)) return;  // nothing new to tell
    // systemd keeps its own entry for 150 s; so do we, and push again when the cache changes.
    auto r = keyring::put(o_.keyring, o_.systemd_key_name, list.bytes(), 150);
    if (!r) {
        CA_LOG(warning) << "cannot push into systemd's '" << o_.systemd_key_name << "' entry: " << std::strerror(r.error());
        return;
    }
    pushed_hash_ = hash_of(list);
    in_systemd_entry_.clear();
    for (const auto* p : plausible) in_systemd_entry_.try_emplace(hash_of(*p), boottime_us());
    touch_ask_dir(o_);
    CA_LOG(info) << "pushed " << plausible.size() << " candidate(s) into systemd's '" << o_.systemd_key_name
                 << "' entry (push-systemd)";
}

void Server::arm_cache_expiry() {
    if (!cache_) return;
    const auto now = boottime_us();
    const auto left = cache_->expires_us > now ? cache_->expires_us - now : 0;
    expiry_timer_.expires_after(std::chrono::microseconds(left));
    expiry_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !stopping_) expire_cache();
    });
}

void Server::expire_cache() {
    if (!cache_) return;
    if (boottime_us() < cache_->expires_us) { arm_cache_expiry(); return; }
    CA_LOG(notice) << "the boot-scoped cache reached its lifetime; flushing it";
    cache_.reset();
    cache_hashes_.clear();
    dirty_ = false;
    auto r = store_.flush(false);
    if (!r.errors.empty()) CA_LOG(err) << "flushing the expired cache: " << r.errors;
}

// ---- serve --------------------------------------------------------------------------------

int run_serve(GlobalOptions options, Reload reload) {
    // Signals arrive through a signalfd in the loop.  They are blocked before anything else
    // starts, so every thread (the PC/SC monitor too) leaves them to the signalfd, and a
    // SIGTERM during start-up is handled rather than killing us half-started.  (Asio's
    // signal_set needs a self-pipe per process and throws from inside the loop's services
    // when descriptors run out; one descriptor of ours, checked here, is simpler.)
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
    if (pthread_sigmask(SIG_BLOCK, &mask, nullptr) != 0) {
        CA_LOG(err) << "cannot start: cannot block signals";
        return 1;
    }
    const int sfd = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        CA_LOG(err) << "cannot start: signalfd: " << std::strerror(errno);
        return 1;
    }
    asio::io_context io(1);
    asio::posix::stream_descriptor signals(io, sfd);
    std::unique_ptr<Server> server;
    try {
        server = std::make_unique<Server>(io, options);
        server->start();
    } catch (const std::exception& e) {
        CA_LOG(err) << "cannot start: " << e.what();
        return 1;
    }
    bool stopping = false;
    auto on_signal = [&](int sig) {
        if (sig == SIGHUP) {
            GlobalOptions fresh = options;
            std::optional<std::string> failed;
            if (reload) failed = reload(fresh);
            else if (auto err = load_config_file(fresh)) failed = err->describe();
            if (failed) {
                CA_LOG(err) << "SIGHUP: keeping the old configuration: " << *failed;
            } else {
                sd_notify("RELOADING=1");
                server->reconfigure(std::move(fresh));
                sd_notify("READY=1");
            }
            return;
        }
        CA_LOG(info) << "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ", stopping";
        stopping = true;
        server->stop();
        io.stop();
    };
    std::function<void()> arm = [&]() {
        signals.async_wait(asio::posix::stream_descriptor::wait_read, [&](const boost::system::error_code& ec) {
            if (ec) return;
            signalfd_siginfo si;
            while (::read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
                on_signal(static_cast<int>(si.ssi_signo));
                if (stopping) return;
            }
            arm();
        });
    };
    arm();
    io.run();
    return 0;
}

}  // namespace ca::agent
