// SPDX-License-Identifier: MIT
#include "agent/askdir/watcher.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string_view>

#include "agent/askdir/files.hpp"
#include "agent/log.hpp"

namespace ca::agent {

namespace asio = boost::asio;

namespace {

// IN_EXCL_UNLINK: nothing about a file after its unlink.  An asker keeps its ask file open
// until it has removed it (systemd-ask-password does), so without it each answered
// question's IN_DELETE was followed by an IN_CLOSE_WRITE of the removed file, read again
// for nothing (ENOENT): one more event, open and look-up per question.
constexpr std::uint32_t kWatchMask = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_ATTRIB |
                                     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK;

std::string mode_string(mode_t m) {
    char s[8];
    std::snprintf(s, sizeof s, "%04o", static_cast<unsigned>(m & 07777));
    return s;
}

}  // namespace

Watcher::Watcher(asio::io_context& io, std::filesystem::path dir, uid_t owner, DirListener& listener)
    : io_(io),
      dir_(std::move(dir)),
      dir_str_(dir_.string()),
      owner_(owner),
      listener_(listener),
      idle_timer_(io),
      rewatch_timer_(io),
      rescan_timer_(io) {}

void Watcher::open() {
    if (!inotify_) {
        int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ifd < 0) throw std::runtime_error(std::string("inotify_init1: ") + std::strerror(errno));
        inotify_ = std::make_unique<asio::posix::stream_descriptor>(io_, ifd);
    }
    if (::mkdir(dir_.c_str(), 0755) == 0) CA_LOG(info) << "created " << dir_str_;
    Fd fd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        const int e = errno;
        throw std::runtime_error(dir_str_ + ": cannot open the ask directory: " +
                                 (e == ELOOP || e == ENOTDIR
                                      ? std::string("it is not a directory (a symlink is refused)")
                                      : std::strerror(e)));
    }
    struct stat st {};
    if (fstat(fd.get(), &st) < 0) throw std::runtime_error(dir_str_ + ": " + std::strerror(errno));
    if (st.st_uid != owner_ || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        throw std::runtime_error(dir_str_ + ": the ask directory must be owned by uid " + std::to_string(owner_) +
                                 " and writable by nobody else");
    const int wd = inotify_add_watch(inotify_->native_handle(), dir_.c_str(), kWatchMask);
    if (wd < 0) throw std::runtime_error(dir_str_ + ": inotify_add_watch: " + std::strerror(errno));
    watch_ = wd;
    // Not kept from here: the first wake opens and checks it again (enter).
    dir_st_ = st;
    have_dir_ = true;
}

void Watcher::stop() {
    stopping_ = true;
    boost::system::error_code ec;
    if (inotify_) inotify_->close(ec);
    rewatch_timer_.cancel();
    rescan_timer_.cancel();
    idle_timer_.cancel();
    dir_fd_.reset();
}

bool Watcher::enter(bool recheck) {
    if (!have_dir_) return false;
    // Between directory-level events nothing about the directory itself can have changed:
    // a chmod or chown is an IN_ATTRIB of the directory (wake.touched), a rename an
    // IN_MOVE_SELF, a removal an IN_DELETE_SELF (once dir_fd_ is closed when idle).
    if (dir_fd_ && verified_ && !recheck) return !unsafe_;
    verified_ = false;
    Fd fd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (!fd || fstat(fd.get(), &st) < 0 || st.st_dev != dir_st_.st_dev || st.st_ino != dir_st_.st_ino) {
        lost("was replaced; watching the new directory");
        return false;
    }
    dir_fd_ = std::move(fd);
    verified_ = true;
    // Re-checked on every IN_ATTRIB of the directory (a chmod, a chown): anyone who can
    // write here can plant questions and sockets.  Answer nothing until it is safe again.
    if (st.st_uid != owner_ || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        if (!unsafe_)
            CA_LOG(err) << dir_str_ << " is now owned by uid " << st.st_uid << " with mode " << mode_string(st.st_mode)
                        << "; not answering anything there until it is owned by uid " << owner_
                        << " and writable by nobody else";
        unsafe_ = true;
        return false;
    }
    if (unsafe_) {
        CA_LOG(notice) << dir_str_ << " is safe again; answering questions there";
        unsafe_ = false;
    }
    return true;
}

void Watcher::close_when_idle() {
    woke_ = true;
    if (idle_armed_ || stopping_) return;
    idle_armed_ = true;
    woke_ = false;
    // 100 ms: a removed directory is noticed that late at most; a storm re-arms this once
    // per 100 ms instead of opening the directory on every wake.
    idle_timer_.expires_after(std::chrono::milliseconds(100));
    idle_timer_.async_wait([this](const boost::system::error_code& ec) {
        idle_armed_ = false;
        if (ec || stopping_) return;
        if (woke_) {
            close_when_idle();
            return;
        }
        dir_fd_.reset();
        verified_ = false;
    });
}

void Watcher::lost(const char* why) {
    dir_fd_.reset();
    verified_ = false;
    CA_LOG(warning) << dir_str_ << " " << why;
    listener_.on_lost();
    rewatch_later();
}

void Watcher::arm() {
    // A read, not a wait: Asio re-registers a descriptor with epoll_ctl for every async_wait,
    // but not for a read that the last wake found exhausted (one system call per wake fewer).
    inotify_->async_read_some(
        asio::buffer(events_.get(), kEventBuffer), [this](const boost::system::error_code& ec, std::size_t n) {
            if (stopping_ || ec == asio::error::operation_aborted) return;
            if (ec) {
                CA_LOG(err) << "reading inotify events failed: " << ec.message() << "; no longer watching " << dir_str_;
                return;
            }
            on_events(n);
            if (!stopping_) arm();
        });
}

int Watcher::hint_dir_fd() {
    if (!dir_fd_) {
        dir_fd_.reset(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        verified_ = false;  // enter() checks it before anything is answered
    }
    return dir_fd_.get();
}

void Watcher::on_events(std::size_t n) {
    // Drain everything queued, then act: the events are a doorbell plus hints.
    char* const buf = events_.get();
    bool overflow = false, lost_dir = false;
    DirWake wake;
    for (bool first = true;; first = false) {
        if (!first) {
            const ssize_t r = ::read(inotify_->native_handle(), buf, kEventBuffer);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                if (errno != EAGAIN)
                    CA_LOG(err) << "reading inotify events failed: " << std::strerror(errno) << "; rescanning";
                break;
            }
            n = static_cast<std::size_t>(r);
        }
        if (n == 0) break;
        // Room for one more event of the longest name means the queue was empty: inotify
        // returns all it has that fits.  Later events wake us again (a read fewer per wake).
        const bool drained = n + sizeof(inotify_event) + NAME_MAX + 1 <= kEventBuffer;
        for (std::size_t off = 0; off + sizeof(inotify_event) <= n;) {
            inotify_event ev;
            std::memcpy(&ev, buf + off, sizeof ev);  // aligned copy of the header
            const char* name = buf + off + sizeof(inotify_event);
            off += sizeof(inotify_event) + ev.len;
            if (ev.mask & IN_Q_OVERFLOW) {
                overflow = true;
                continue;
            }
            if (ev.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                lost_dir = true;
                continue;
            }
            if (ev.len == 0) {
                if (ev.mask & IN_ATTRIB) wake.touched = true;
                continue;
            }
            const std::string_view raw(name, strnlen(name, ev.len));
            if (!is_question_name(raw)) continue;  // tmp.*, sck.*: half of each question's events
            std::string nm(raw);
            if (ev.mask & (IN_DELETE | IN_MOVED_FROM)) wake.names.emplace_back(std::move(nm), false);
            else if (ev.mask & IN_CREATE) {
                // A regular file created under its final name is still being written: wait
                // for IN_CLOSE_WRITE.  Anything else (symlink, FIFO, directory) is judged now.
                struct stat st {};
                if (fstatat(hint_dir_fd(), nm.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode))
                    wake.names.emplace_back(std::move(nm), true);
            } else if (ev.mask & (IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB))
                wake.names.emplace_back(std::move(nm), true);
        }
        if (drained) break;
    }
    if (lost_dir) {
        lost("was removed or moved; re-creating and watching it again");
        return;
    }
    const bool was_unsafe = unsafe_;
    const bool entered = enter(wake.touched);
    close_when_idle();
    if (!entered) return;
    // Questions that arrived while the directory was unsafe were not looked at.
    if (overflow || was_unsafe) {
        if (!was_unsafe) CA_LOG(info) << "inotify queue overflowed; rescanning " << dir_str_;
        wake.names.clear();
        scan(std::move(wake));
        return;
    }
    listener_.on_wake(wake);
}

void Watcher::scan_now() {
    const bool entered = enter(true);
    close_when_idle();
    if (entered) scan(DirWake{});
}

void Watcher::scan(DirWake wake) {
    if (!dir_fd_) return;
    // A listing that fails (out of descriptors) still reports the touch: that needs no fd.
    const auto touch_only = [this, &wake] {
        if (wake.touched) listener_.on_wake(wake);
    };
    Fd dup(::fcntl(dir_fd_.get(), F_DUPFD_CLOEXEC, 3));
    if (!dup) {
        if (fd_pressure_.first())
            CA_LOG(warning) << "cannot scan " << dir_str_ << ": " << std::strerror(errno)
                            << "; retrying every 100 ms (raise LimitNOFILE= if this persists)";
        rescan_later();
        touch_only();
        return;
    }
    DIR* d = ::fdopendir(dup.get());
    if (d == nullptr) {
        CA_LOG(err) << "cannot scan " << dir_str_ << ": " << std::strerror(errno);
        touch_only();
        return;
    }
    dup.release();
    if (fd_pressure_.end()) CA_LOG(notice) << "file descriptors are available again; scanning " << dir_str_;
    ::rewinddir(d);
    wake.full = true;
    while (dirent* de = ::readdir(d)) {
        std::string nm = de->d_name;
        if (!is_question_name(nm)) continue;
        wake.entries.push_back({std::move(nm), de->d_ino});
    }
    ::closedir(d);
    listener_.on_wake(wake);
}

void Watcher::rescan_later() {
    if (rescan_armed_ || stopping_) return;
    rescan_armed_ = true;
    rescan_timer_.expires_after(std::chrono::milliseconds(100));
    rescan_timer_.async_wait([this](const boost::system::error_code& ec) {
        rescan_armed_ = false;
        if (ec || stopping_) return;
        scan_now();
    });
}

void Watcher::rewatch_later() {
    if (watch_ >= 0) (void)inotify_rm_watch(inotify_->native_handle(), watch_);
    watch_ = -1;
    dir_fd_.reset();
    verified_ = false;
    have_dir_ = false;
    rewatch_timer_.expires_after(std::chrono::milliseconds(10));
    rewatch_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopping_) return;
        try {
            open();
            if (rewatch_error_.end()) CA_LOG(notice) << "watching " << dir_str_ << " again";
            scan_now();
        } catch (const std::exception& e) {
            // Once per cause: a directory replaced by a symlink stays refused until a real one
            // comes back, and a line a second would bury everything else.
            if (rewatch_error_.first(e.what()))
                CA_LOG(err) << e.what()
                            << "; nothing is answered there until it is a real directory again (checking every second)";
            rewatch_timer_.expires_after(std::chrono::seconds(1));
            rewatch_timer_.async_wait([this](const boost::system::error_code& ec2) {
                if (!ec2 && !stopping_) rewatch_later();
            });
        }
    });
}

}  // namespace ca::agent
