// SPDX-License-Identifier: MIT
// Which questions have been answered, kept on tmpfs next to the cache (CACHE_DIR/answered)
// so that an agent started after a crash, a SIGKILL or switch-root never answers a
// question a second time.  Nothing secret is in it: which ask file (the directory's
// device, a hash of the file's name, its inode and change time) and which socket
// (device, inode) a reply went to.
//
// The record is written before the datagram is sent: one pwrite of 64 bytes into a slot
// of a file kept open, the only system call this adds per question.  A crash after the
// send therefore always leaves the record, and the next instance skips the question.
// A crash between the record and the send leaves a record of a reply that never went;
// one thread sends one reply at a time, so only the newest record can be in that state,
// and only until the next burst of answers is confirmed (a header written 20 ms after
// it, with the cache).  The next instance treats that one record as uncertain: if a
// datagram waits on its socket (asked of the kernel through NETLINK_SOCK_DIAG), it was
// sent; otherwise the question is answered once it is still there after a grace second.
// The trade-off, stated: an asker that has read the reply and keeps its file more than a
// second (systemd's removes it at once) could get that one reply twice; the alternative,
// never answering it, could leave a disk waiting for a person who is not there.
//
// Bounded: 8191 slots at most (512 KiB); a slot is reused once its question is gone.  The
// file is locked (flock) by the instance using it; a second instance running at the same
// time with the same cache directory works without it, and says so.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agent/fd.hpp"

namespace ca::agent {

struct AskIdentity {
    std::uint64_t dir_dev = 0;
    std::uint64_t name_hash = 0;
    std::uint64_t ino = 0;
    std::uint64_t ctime_ns = 0;
    friend bool operator==(const AskIdentity&, const AskIdentity&) = default;
};
struct AskIdentityHash {
    std::size_t operator()(const AskIdentity& k) const noexcept;
};
[[nodiscard]] AskIdentity ask_identity(dev_t dir_dev, std::string_view name, ino_t ino, const timespec& ctime) noexcept;
[[nodiscard]] std::uint64_t name_hash(std::string_view name) noexcept;

struct SocketIdentity {
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
};

// Bytes of the first datagram waiting in the receive queue of the AF_UNIX socket bound at
// this inode (0: none), as the kernel reports it (NETLINK_SOCK_DIAG, UDIAG_SHOW_RQLEN);
// nullopt when it cannot tell (no unix_diag, or no such socket in our network namespace).
[[nodiscard]] std::optional<std::uint32_t> socket_queue(SocketIdentity s);

class AnsweredLog {
public:
    static constexpr std::size_t kRecordSize = 64;
    static constexpr std::uint32_t kMaxSlots = 8191;  // plus the header: 512 KiB

    struct Entry {
        std::uint32_t slot = 0;
        std::uint64_t seq = 0;
        SocketIdentity sock;
        bool inherited = false;  // written by an earlier instance
        bool uncertain = false;  // its newest record, not confirmed: maybe never sent
    };

    // Opens (creating it 0600 in a 0700 directory) and locks DIR/answered, and reads what
    // earlier instances recorded.  Returns a warning for the log when it cannot be used;
    // the agent then answers without it.
    [[nodiscard]] std::string open(const std::filesystem::path& dir);
    [[nodiscard]] bool usable() const noexcept { return static_cast<bool>(fd_); }
    [[nodiscard]] std::string path() const { return path_; }

    [[nodiscard]] const Entry* find(const AskIdentity& k) const;
    // Before the send: one pwrite.  Returns an error text when it could not be written
    // (the reply is sent anyway: answering matters more than the guard).
    [[nodiscard]] std::optional<std::string> record(const AskIdentity& k, SocketIdentity sock);
    // The send did not deliver (queue full, asker gone, refused): the record must not
    // claim a reply.  One pwrite, on these rare paths only.
    void erase(const AskIdentity& k);
    // The uncertain record has been settled (its reply was found waiting, or is sent now).
    void settle(const AskIdentity& k);
    // The question is gone: its slot may be reused.  No system call; the stale record names
    // a file that no longer exists and can match nothing.
    void release(const AskIdentity& k);
    // Releases every record whose file is not among `present` (name, inode) in the ask
    // directory on device `dir_dev` any more: after a full scan.
    void keep_only(std::uint64_t dir_dev, const std::vector<std::pair<std::string, ino_t>>& present);
    // Confirms every record written so far (their sends returned): one pwrite of the
    // header, only when something was recorded since the last confirmation.
    void confirm();

    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
    [[nodiscard]] std::size_t inherited_count() const noexcept { return inherited_; }
    [[nodiscard]] bool evicted() const noexcept { return evicted_; }

private:
    bool write_slot(std::uint32_t slot, const unsigned char* rec);
    std::uint32_t take_slot();
    void remember_order(const AskIdentity& k, std::uint64_t seq);

    Fd fd_;
    std::string path_;
    std::unordered_map<AskIdentity, Entry, AskIdentityHash> entries_;
    std::vector<std::uint32_t> free_;
    // Records in the order written (seq, question), for take_slot's eviction of the oldest;
    // stale pairs (released, erased or re-recorded questions) are skipped and compacted away.
    // Why: a backlog of more questions than slots evicted on every answer, and finding the
    // oldest by a scan of entries_ was 8191 steps per answer (most of the agent's CPU).
    std::deque<std::pair<std::uint64_t, AskIdentity>> order_;
    std::uint32_t slots_ = 0;  // slots in use in the file (high-water mark)
    std::uint64_t next_seq_ = 1;
    std::uint64_t confirmed_ = 0;  // the header's: every record up to this seq was sent
    std::size_t inherited_ = 0;
    bool evicted_ = false;  // the bound was reached once (logged by the caller)
};

}  // namespace ca::agent
