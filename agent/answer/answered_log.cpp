// SPDX-License-Identifier: MIT
#include "agent/answer/answered_log.hpp"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

namespace ca::agent {

namespace {

// Record kinds (the first four bytes of a slot).
constexpr unsigned char kHeader[4] = {'C', 'A', 'Q', 'h'};     // slot 0: confirmed seq
constexpr unsigned char kAnswered[4] = {'C', 'A', 'Q', 'a'};   // recorded before its send
constexpr unsigned char kUncertain[4] = {'C', 'A', 'Q', 'u'};  // inherited unconfirmed: maybe never sent
constexpr unsigned char kErased[4] = {'C', 'A', 'Q', 'e'};     // its send did not deliver

constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL, kFnvPrime = 0x100000001b3ULL;

std::uint64_t fnv1a(const unsigned char* p, std::size_t n, std::uint64_t h = kFnvOffset) noexcept {
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnvPrime;
    return h;
}

// Over everything but the check field itself: a torn or foreign slot is not a record.
std::uint32_t check_of(const unsigned char* rec) noexcept {
    const auto h = fnv1a(rec + 8, AnsweredLog::kRecordSize - 8, fnv1a(rec, 4));
    return static_cast<std::uint32_t>(h ^ (h >> 32));
}

void put64(unsigned char* p, std::uint64_t v) noexcept { std::memcpy(p, &v, 8); }
std::uint64_t get64(const unsigned char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

void seal(unsigned char* rec, const unsigned char (&kind)[4]) noexcept {
    std::memcpy(rec, kind, 4);
    const std::uint32_t c = check_of(rec);
    std::memcpy(rec + 4, &c, 4);
}

bool is(const unsigned char* rec, const unsigned char (&kind)[4]) noexcept { return std::memcmp(rec, kind, 4) == 0; }

bool sealed(const unsigned char* rec) noexcept {
    std::uint32_t c;
    std::memcpy(&c, rec + 4, 4);
    return c == check_of(rec);
}

void encode(unsigned char* rec, const unsigned char (&kind)[4], std::uint64_t seq, const AskIdentity& k,
            SocketIdentity s) noexcept {
    std::memset(rec, 0, AnsweredLog::kRecordSize);
    put64(rec + 8, seq);
    put64(rec + 16, k.dir_dev);
    put64(rec + 24, k.name_hash);
    put64(rec + 32, k.ino);
    put64(rec + 40, k.ctime_ns);
    put64(rec + 48, s.dev);
    put64(rec + 56, s.ino);
    seal(rec, kind);
}

}  // namespace

std::uint64_t name_hash(std::string_view name) noexcept {
    return fnv1a(reinterpret_cast<const unsigned char*>(name.data()), name.size());
}

std::size_t AskIdentityHash::operator()(const AskIdentity& k) const noexcept {
    return static_cast<std::size_t>(k.name_hash ^ (k.ino * 0x9e3779b97f4a7c15ULL) ^ (k.ctime_ns << 1) ^ k.dir_dev);
}

AskIdentity ask_identity(dev_t dir_dev, std::string_view name, ino_t ino, const timespec& ctime) noexcept {
    return AskIdentity{
        static_cast<std::uint64_t>(dir_dev), name_hash(name), static_cast<std::uint64_t>(ino),
        static_cast<std::uint64_t>(ctime.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ctime.tv_nsec)};
}

std::string AnsweredLog::open(const std::filesystem::path& dir) {
    path_ = (dir / "answered").string();
    if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) return dir.string() + ": " + std::strerror(errno);
    Fd fd(::open(path_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
    if (!fd) return path_ + ": " + std::strerror(errno);
    struct stat st {};
    if (fstat(fd.get(), &st) < 0) return path_ + ": " + std::strerror(errno);
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0)
        return path_ + ": not a regular 0600 file of ours, not using it";
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) return path_ + " is in use by another crypt-agent instance";
        return path_ + ": flock: " + std::strerror(errno);
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    std::vector<unsigned char> buf(std::min<std::size_t>(size, (kMaxSlots + 1) * kRecordSize) / kRecordSize *
                                   kRecordSize);
    std::size_t got = 0;
    while (got < buf.size()) {
        ssize_t n = ::pread(fd.get(), buf.data() + got, buf.size() - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    buf.resize(got / kRecordSize * kRecordSize);
    const std::uint32_t nslots = buf.empty() ? 0 : static_cast<std::uint32_t>(buf.size() / kRecordSize - 1);
    if (!buf.empty() && is(buf.data(), kHeader) && sealed(buf.data())) confirmed_ = get64(buf.data() + 8);
    std::uint64_t max_seq = confirmed_;
    std::optional<AskIdentity> newest;  // the answered record with the highest sequence number
    std::uint64_t newest_seq = 0;
    for (std::uint32_t s = 1; s <= nslots; ++s) {
        const unsigned char* r = buf.data() + static_cast<std::size_t>(s) * kRecordSize;
        const bool valid = sealed(r) && (is(r, kAnswered) || is(r, kUncertain) || is(r, kErased));
        const std::uint64_t seq = valid ? get64(r + 8) : 0;
        max_seq = std::max(max_seq, seq);
        if (!valid || is(r, kErased)) {
            free_.push_back(s);
            continue;
        }
        const AskIdentity k{get64(r + 16), get64(r + 24), get64(r + 32), get64(r + 40)};
        Entry e{s, seq, SocketIdentity{get64(r + 48), get64(r + 56)}, true, is(r, kUncertain)};
        auto [it, fresh] = entries_.try_emplace(k, e);
        if (!fresh) {  // cannot happen (one slot per question), but never two slots for one
            if (it->second.seq > seq) {
                free_.push_back(s);
                continue;
            }
            free_.push_back(it->second.slot);
            it->second = e;
        }
        if (seq > newest_seq) {
            newest = k;
            newest_seq = seq;
        }
    }
    for (const auto& [k, e] : entries_) order_.emplace_back(e.seq, k);
    std::sort(order_.begin(), order_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    // Reuse the lowest slots first, so the file stays as small as the questions alive.
    std::sort(free_.begin(), free_.end(), std::greater<>());
    slots_ = nslots;
    next_seq_ = max_seq + 1;
    inherited_ = entries_.size();
    fd_ = std::move(fd);
    // The newest record was written before a send its writer may not have reached.  Mark it so
    // on disk: this instance's confirmations must not vouch for a send it did not make.
    if (newest && newest_seq > confirmed_ && newest_seq == max_seq && !entries_.at(*newest).uncertain) {
        auto& e = entries_.at(*newest);
        e.uncertain = true;
        unsigned char rec[kRecordSize];
        encode(rec, kUncertain, e.seq, *newest, e.sock);
        (void)write_slot(e.slot, rec);
    }
    return {};
}

const AnsweredLog::Entry* AnsweredLog::find(const AskIdentity& k) const {
    auto it = entries_.find(k);
    return it == entries_.end() ? nullptr : &it->second;
}

bool AnsweredLog::write_slot(std::uint32_t slot, const unsigned char* rec) {
    for (;;) {
        ssize_t n = ::pwrite(fd_.get(), rec, kRecordSize, static_cast<off_t>(slot) * static_cast<off_t>(kRecordSize));
        if (n < 0 && errno == EINTR) continue;
        return n == static_cast<ssize_t>(kRecordSize);
    }
}

std::uint32_t AnsweredLog::take_slot() {
    if (!free_.empty()) {
        const auto s = free_.back();
        free_.pop_back();
        return s;
    }
    if (slots_ < kMaxSlots) return ++slots_;
    // Every slot names a question still present: give up the oldest record (a restart could
    // answer that one question again; the caller logs this once).
    while (!order_.empty()) {
        const auto [seq, k] = order_.front();
        order_.pop_front();
        auto it = entries_.find(k);
        if (it == entries_.end() || it->second.seq != seq || it->second.slot == 0) continue;  // stale
        const auto s = it->second.slot;
        entries_.erase(it);
        evicted_ = true;
        return s;
    }
    auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                   [](const auto& a, const auto& b) { return a.second.seq < b.second.seq; });
    const auto s = oldest->second.slot;
    entries_.erase(oldest);
    evicted_ = true;
    return s;
}

void AnsweredLog::remember_order(const AskIdentity& k, std::uint64_t seq) {
    order_.emplace_back(seq, k);
    if (order_.size() <= 2 * entries_.size() + 64) return;
    // Amortised: drop the pairs that no longer name a current record.
    std::erase_if(order_, [this](const auto& p) {
        auto it = entries_.find(p.second);
        return it == entries_.end() || it->second.seq != p.first;
    });
}

std::optional<std::string> AnsweredLog::record(const AskIdentity& k, SocketIdentity sock) {
    if (!fd_) {  // no file: this instance still remembers (slot 0 is the header: never written)
        entries_[k] = Entry{0, next_seq_++, sock, false, false};
        remember_order(k, next_seq_ - 1);
        return std::nullopt;
    }
    auto it = entries_.find(k);
    const std::uint32_t slot = it != entries_.end() ? it->second.slot : take_slot();
    const std::uint64_t seq = next_seq_++;
    unsigned char rec[kRecordSize];
    encode(rec, kAnswered, seq, k, sock);
    entries_[k] = Entry{slot, seq, sock, false, false};
    remember_order(k, seq);
    if (!write_slot(slot, rec)) return path_ + ": " + std::strerror(errno);
    return std::nullopt;
}

void AnsweredLog::erase(const AskIdentity& k) {
    auto it = entries_.find(k);
    if (it == entries_.end()) return;
    // An erased record keeps a sequence number, so an older record never looks like the newest.
    unsigned char rec[kRecordSize];
    encode(rec, kErased, next_seq_++, k, it->second.sock);
    if (it->second.slot != 0) {
        (void)write_slot(it->second.slot, rec);
        free_.push_back(it->second.slot);
    }
    entries_.erase(it);
}

void AnsweredLog::settle(const AskIdentity& k) {
    auto it = entries_.find(k);
    if (it == entries_.end() || !it->second.uncertain) return;
    it->second.uncertain = false;
    if (it->second.slot == 0) return;
    unsigned char rec[kRecordSize];
    encode(rec, kAnswered, it->second.seq, k, it->second.sock);
    (void)write_slot(it->second.slot, rec);
}

void AnsweredLog::release(const AskIdentity& k) {
    auto it = entries_.find(k);
    if (it == entries_.end()) return;
    if (it->second.slot != 0) free_.push_back(it->second.slot);
    entries_.erase(it);
}

void AnsweredLog::keep_only(std::uint64_t dir_dev, const std::vector<std::pair<std::string, ino_t>>& present) {
    if (entries_.empty()) return;
    std::unordered_set<AskIdentity, AskIdentityHash> here;  // (ctime 0: name and inode only)
    for (const auto& [name, ino] : present)
        here.insert(AskIdentity{dir_dev, name_hash(name), static_cast<std::uint64_t>(ino), 0});
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (here.count(AskIdentity{it->first.dir_dev, it->first.name_hash, it->first.ino, 0}) != 0) {
            ++it;
            continue;
        }
        if (it->second.slot != 0) free_.push_back(it->second.slot);
        it = entries_.erase(it);
    }
}

void AnsweredLog::confirm() {
    if (!fd_ || next_seq_ - 1 <= confirmed_) return;
    unsigned char rec[kRecordSize] = {};
    put64(rec + 8, next_seq_ - 1);
    seal(rec, kHeader);
    if (write_slot(0, rec)) confirmed_ = next_seq_ - 1;
}

std::optional<std::uint32_t> socket_queue(SocketIdentity s) {
    Fd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!nl) return std::nullopt;
    struct {
        nlmsghdr nlh;
        unix_diag_req req;
    } msg{};
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = AF_UNIX;
    msg.req.udiag_states = ~0U;
    msg.req.udiag_show = UDIAG_SHOW_VFS | UDIAG_SHOW_RQLEN;
    const timeval limit{1, 0};  // the kernel answers at once; never let a lost reply stall the loop
    (void)::setsockopt(nl.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(nl.get(), &msg, sizeof msg, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) < 0)
        return std::nullopt;
    // A dump datagram is at most 32 KiB (the kernel's cap on max_recvmsg_len).  Headers are
    // copied out rather than cast in place (the netlink macros are casts).
    std::vector<unsigned char> buf(32768);
    std::optional<std::uint32_t> found;
    constexpr auto align4 = [](std::size_t n) { return (n + 3) & ~std::size_t{3}; };
    for (;;) {
        ssize_t n = ::recv(nl.get(), buf.data(), buf.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return found;
        const auto len = static_cast<std::size_t>(n);
        for (std::size_t off = 0; off + sizeof(nlmsghdr) <= len;) {
            nlmsghdr h;
            std::memcpy(&h, buf.data() + off, sizeof h);
            if (h.nlmsg_len < sizeof h || off + h.nlmsg_len > len) break;
            if (h.nlmsg_type == NLMSG_DONE || h.nlmsg_type == NLMSG_ERROR) return found;
            const std::size_t body = off + align4(sizeof h), end = off + h.nlmsg_len;
            off += align4(h.nlmsg_len);
            if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY || body + sizeof(unix_diag_msg) > end) continue;
            std::optional<unix_diag_vfs> vfs;
            std::optional<unix_diag_rqlen> rq;
            for (std::size_t a = body + align4(sizeof(unix_diag_msg)); a + sizeof(nlattr) <= end;) {
                nlattr at;
                std::memcpy(&at, buf.data() + a, sizeof at);
                if (at.nla_len < sizeof at || a + at.nla_len > end) break;
                const unsigned char* payload = buf.data() + a + align4(sizeof at);
                const std::size_t plen = at.nla_len - align4(sizeof at);
                if (at.nla_type == UNIX_DIAG_VFS && plen >= sizeof(unix_diag_vfs)) {
                    unix_diag_vfs v;
                    std::memcpy(&v, payload, sizeof v);
                    vfs = v;
                } else if (at.nla_type == UNIX_DIAG_RQLEN && plen >= sizeof(unix_diag_rqlen)) {
                    unix_diag_rqlen r;
                    std::memcpy(&r, payload, sizeof r);
                    rq = r;
                }
                a += align4(at.nla_len);
            }
            if (!vfs || !rq || vfs->udiag_vfs_ino != s.ino) continue;
            // The kernel's dev_t in the message is (major << 20 | minor).
            const auto kdev = vfs->udiag_vfs_dev;
            if (makedev(kdev >> 20, kdev & 0xfffffU) != s.dev) continue;
            found = rq->udiag_rqueue;
        }
    }
}

}  // namespace ca::agent
