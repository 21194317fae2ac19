// SPDX-License-Identifier: MIT
// The ask directory: its inotify watch, its identity, re-watching it when it is removed or
// replaced, and rescans.  inotify is a doorbell: every wake drains the queue, then reports
// one batch upward (what appeared, what went, whether the directory was touched, or a full
// listing after an overflow).  It holds no question state: what a name means is the
// listener's business (answer/flow).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agent/fd.hpp"
#include "agent/log_once.hpp"

namespace ca::agent {

// One wake's report.  While the listener handles it, the directory is open (Watcher::dir_fd).
struct DirWake {
    struct Entry {
        std::string name;
        ino_t ino = 0;
    };
    bool touched = false;  // the directory's own IN_ATTRIB: systemd pushed into its keyring entry
    bool full = false;     // a full listing: `entries` is every question name present now
    std::vector<Entry> entries;
    std::vector<std::pair<std::string, bool>> names;  // hints (when !full): name, appeared or went
};

class DirListener {
public:
    virtual ~DirListener() = default;
    // One batch: touched first, then the listing or the hints.
    virtual void on_wake(const DirWake& wake) = 0;
    // The directory was removed, moved or replaced: every question in it is gone.
    virtual void on_lost() = 0;
};

class Watcher {
public:
    Watcher(boost::asio::io_context& io, std::filesystem::path dir, uid_t owner, DirListener& listener);
    Watcher(const Watcher&) = delete;
    Watcher& operator=(const Watcher&) = delete;

    // Creates the directory if missing, checks it and adds the watch.  Throws
    // std::runtime_error with a reason for the administrator.
    void open();
    // Waits for events (again after each wake) until stop().
    void arm();
    // A full listing now (start, reload).
    void scan_now();
    // A full listing in 100 ms: a transient failure (out of descriptors).
    void rescan_later();
    void stop();

    // Out of descriptors, logged once until a scan succeeds again (shared with the readers).
    [[nodiscard]] LogOnce& fd_pressure() noexcept { return fd_pressure_; }

    // Open during on_wake; between wakes it stays open while questions keep coming, and may be -1.
    [[nodiscard]] int dir_fd() const noexcept { return dir_fd_.get(); }
    [[nodiscard]] const struct stat& dir_stat() const noexcept { return dir_st_; }
    [[nodiscard]] const std::string& dir_path() const noexcept { return dir_str_; }
    // The directory became writable by others: answer nothing until it is safe again.
    [[nodiscard]] bool unsafe() const noexcept { return unsafe_; }

private:
    bool enter(bool recheck);       // the watched directory for this wake; false if replaced or unsafe
    int hint_dir_fd();              // the directory, opened on demand while draining events
    void close_when_idle();         // closes dir_fd_ once a wake-free interval has passed
    void on_events(std::size_t n);  // n: bytes of events already read into events_
    void scan(DirWake wake);        // lists the directory into `wake` and reports it
    void rewatch_later();
    void lost(const char* why);

    boost::asio::io_context& io_;
    std::filesystem::path dir_;
    std::string dir_str_;
    uid_t owner_;
    DirListener& listener_;
    std::unique_ptr<boost::asio::posix::stream_descriptor> inotify_;
    static constexpr std::size_t kEventBuffer = 64 * 1024;
    std::unique_ptr<char[]> events_ = std::make_unique_for_overwrite<char[]>(
        kEventBuffer);  // inotify_event-aligned (new)
    int watch_ = -1;
    // Kept open across wakes while they keep coming (a storm wakes us once per question or
    // so, and open+fstat+close each time was 3 of the agent's system calls per question).
    // Closed after an idle interval: an open descriptor holds back the kernel's
    // IN_DELETE_SELF of a removed directory until it is closed.
    Fd dir_fd_;
    bool verified_ = false;  // dir_fd_ is the watched directory, checked by enter()
    bool woke_ = false;      // a wake since the idle timer was armed
    bool idle_armed_ = false;
    boost::asio::steady_timer idle_timer_;
    struct stat dir_st_ {};
    bool have_dir_ = false;
    bool unsafe_ = false;
    bool stopping_ = false;
    boost::asio::steady_timer rewatch_timer_;
    boost::asio::steady_timer rescan_timer_;
    bool rescan_armed_ = false;
    LogOnce fd_pressure_;
    LogOncePerCause rewatch_error_;  // why the directory cannot be watched
};

}  // namespace ca::agent
