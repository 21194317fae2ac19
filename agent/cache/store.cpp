// SPDX-License-Identifier: MIT
#include "agent/cache/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/cache/keyring.hpp"
#include "agent/clock.hpp"
#include "agent/fd.hpp"

namespace ca::agent {

const char* to_string(StoreKind k) noexcept { return k == StoreKind::keyring ? "kernel keyring" : "tmpfs file"; }

CacheStore::CacheStore(const GlobalOptions& o) : o_(o) {}

std::string CacheStore::file_path() const { return (o_.cache_dir / "cache").string(); }

namespace {

std::string errno_text(int e) { return std::strerror(e); }

bool keyring_absent(int e) { return e == ENOKEY || e == EKEYEXPIRED || e == EKEYREVOKED || e == ENOSYS; }

// Every file in the cache directory: no symlink followed, no blocking on a FIFO, no
// controlling terminal, and only a regular file of ours is used.
constexpr int kOpenFlags = O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;

bool ours_regular(int fd) {
    struct stat st {};
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid();
}

proto::Expected<proto::Secret, int> read_file_locked(int dirfd, const char* name) {
    Fd fd(::openat(dirfd, name, O_RDONLY | kOpenFlags));
    if (!fd) return proto::unexpected(errno);
    struct stat st {};
    if (fstat(fd.get(), &st) < 0) return proto::unexpected(errno);
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) return proto::unexpected(EPERM);
    if (st.st_size <= 0 || static_cast<std::size_t>(st.st_size) > proto::kCachePayloadMax)
        return proto::unexpected(EFBIG);
    proto::Secret buf(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < buf.size()) {
        ssize_t n = ::read(fd.get(), buf.data() + got, buf.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return proto::unexpected(n < 0 ? errno : EIO);
        got += static_cast<std::size_t>(n);
    }
    return buf;
}

}  // namespace

proto::Expected<Fd, std::string> CacheStore::open_dir(bool create) const {
    const std::string dir = o_.cache_dir.string();
    if (create && ::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST)
        return proto::unexpected(dir + ": " + errno_text(errno));
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        const int e = errno;
        if (e == ENOENT && !create) return Fd{};
        if (e == ELOOP || e == ENOTDIR)
            return proto::unexpected(dir + ": the cache directory is not a directory (a symlink is refused)");
        return proto::unexpected(dir + ": " + errno_text(e));
    }
    struct stat st {};
    if (fstat(fd.get(), &st) < 0) return proto::unexpected(dir + ": " + errno_text(errno));
    if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return proto::unexpected(dir + ": the cache directory must be owned by uid " + std::to_string(geteuid()) +
                                 " and writable by nobody else (it is owned by uid " + std::to_string(st.st_uid) +
                                 (st.st_mode & (S_IWGRP | S_IWOTH) ? ", writable by group or others)" : ")"));
    return fd;
}

std::optional<std::string> CacheStore::check_dir() const {
    auto d = open_dir(false);
    if (!d) return d.error();
    return std::nullopt;
}

LoadResult CacheStore::load() {
    LoadResult r;
    std::optional<proto::Secret> bytes;
    auto id = keyring::find(o_.keyring, kCacheKeyName);
    const auto mine = id ? keyring::ours(*id) : proto::Expected<bool, int>(false);
    if (id && (!mine || !*mine)) {
        r.warning = std::string("the cache key in the ") + to_string(o_.keyring) + " keyring is not owned by uid " +
                    std::to_string(geteuid()) + ", ignoring it";
    } else if (id) {
        auto b = keyring::read(*id);
        if (b) {
            bytes = std::move(*b);
            r.from = StoreKind::keyring;
        } else r.warning = std::string("cannot read the cache key: ") + errno_text(b.error());
    } else if (!keyring_absent(id.error())) {
        r.warning = std::string("cannot search the ") + to_string(o_.keyring) + " keyring: " + errno_text(id.error());
    }
    if (!bytes) {
        auto dir = open_dir(false);
        if (!dir) {
            r.warning += (r.warning.empty() ? "" : "; ") + dir.error();
        } else if (*dir) {
            auto f = read_file_locked(dir->get(), "cache");
            if (f) {
                bytes = std::move(*f);
                r.from = StoreKind::file;
            } else if (f.error() == EPERM)
                r.warning += (r.warning.empty() ? "" : "; ") + file_path() + " is not a regular 0600 file of uid " +
                             std::to_string(geteuid()) + ", ignoring it";
            else if (f.error() != ENOENT)
                r.warning += (r.warning.empty() ? "" : "; ") + std::string("cannot read ") + file_path() + ": " +
                             errno_text(f.error());
        }
    }
    if (!bytes) return r;
    auto p = proto::decode_cache(bytes->bytes());
    if (!p) {
        r.warning += (r.warning.empty() ? "" : "; ") + std::string("the stored cache is unreadable (") +
                     proto::to_string(p.error()) + "), ignoring it";
        r.from.reset();
        return r;
    }
    if (boottime_us() >= p->expires_us) {
        r.expired = true;
        r.from.reset();
        (void)flush(false);
        return r;
    }
    r.payload = std::move(*p);
    return r;
}

proto::Expected<StoreKind, std::string> CacheStore::save(const proto::CachePayload& p, proto::CacheFit* fit) {
    if (finished()) return proto::unexpected(std::string("finish already ran this boot; not storing the cache again"));
    auto bytes = proto::encode_cache(p, fit);
    if (!bytes) return proto::unexpected(std::string("cannot encode the cache: ") + proto::to_string(bytes.error()));
    const auto now = boottime_us();
    if (p.expires_us <= now) return proto::unexpected(std::string("the cache has reached its lifetime"));
    const auto ttl = static_cast<unsigned>((p.expires_us - now + 999999) / 1000000);
    auto id = keyring::put(o_.keyring, kCacheKeyName, bytes->bytes(), ttl);
    if (id) {
        std::string ignored;
        (void)wipe_file(ignored);  // a keyring copy supersedes an older fallback file
        return StoreKind::keyring;
    }
    const int e = id.error();
    auto f = save_file(*bytes);
    if (!f)
        return proto::unexpected(std::string("cannot store the cache in the keyring (") + errno_text(e) +
                                 ") nor in a file (" + f.error() + ")");
    return StoreKind::file;
}

proto::Expected<StoreKind, std::string> CacheStore::save_file(const proto::Secret& bytes) {
    auto dir = open_dir(true);
    if (!dir) return proto::unexpected(dir.error());
    const int dfd = dir->get();
    const std::string tmp = file_path() + ".new";
    (void)::unlinkat(dfd, "cache.new", 0);
    Fd fd(::openat(dfd, "cache.new", O_WRONLY | O_CREAT | O_EXCL | kOpenFlags, 0600));
    if (!fd) return proto::unexpected(tmp + ": " + errno_text(errno));
    std::size_t off = 0;
    while (off < bytes.size()) {
        ssize_t n = ::write(fd.get(), bytes.data() + off, bytes.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            (void)::unlinkat(dfd, "cache.new", 0);
            return proto::unexpected(tmp + ": " + errno_text(e));
        }
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) < 0) {
        const int e = errno;
        (void)::unlinkat(dfd, "cache.new", 0);
        return proto::unexpected(tmp + ": " + errno_text(e));
    }
    if (::renameat(dfd, "cache.new", dfd, "cache") < 0) {
        int e = errno;
        (void)::unlinkat(dfd, "cache.new", 0);
        return proto::unexpected(file_path() + ": " + errno_text(e));
    }
    return StoreKind::file;
}

bool CacheStore::wipe_file(std::string& errors) {
    const std::string path = file_path();
    auto dir = open_dir(false);
    if (!dir) {
        errors += dir.error() + "; ";
        return false;
    }
    if (!*dir) return false;  // no directory, no file
    const int dfd = dir->get();
    Fd fd(::openat(dfd, "cache", O_WRONLY | kOpenFlags));
    if (!fd && errno == ENOENT) return false;
    // Overwrite before unlinking: on tmpfs the pages are freed at unlink, but a fallback store
    // on a real disk would otherwise keep the bytes.  Only a regular file of ours is written
    // to; anything else by that name (a FIFO gives ENXIO here, a symlink ELOOP) is only removed.
    struct stat st {};
    if (fd && fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && st.st_size > 0) {
        static const unsigned char zeros[4096] = {};
        auto left = static_cast<std::size_t>(st.st_size);
        while (left > 0) {
            ssize_t n = ::write(fd.get(), zeros, left < sizeof zeros ? left : sizeof zeros);
            if (n <= 0) break;
            left -= static_cast<std::size_t>(n);
        }
        (void)::fsync(fd.get());
    }
    if (::unlinkat(dfd, "cache", 0) < 0 && errno != ENOENT) {
        errors += path + ": " + errno_text(errno) + "; ";
        return false;
    }
    return true;
}

FlushReport CacheStore::flush(bool systemd_entry) {
    FlushReport r;
    auto k = keyring::remove(o_.keyring, kCacheKeyName);
    if (k) r.keyring_key = *k;
    else r.errors += std::string("keyring: ") + errno_text(k.error()) + "; ";
    r.file = wipe_file(r.errors);
    if (systemd_entry) {
        auto s = keyring::remove(o_.keyring, o_.systemd_key_name);
        if (s) r.systemd_entry = *s;
        else r.errors += std::string("systemd's '") + o_.systemd_key_name + "' key: " + errno_text(s.error()) + "; ";
    }
    return r;
}

bool CacheStore::finished() const {
    // Only a regular file of ours in a directory of ours counts: anything else was not made by
    // `finish` (and open() of a FIFO must not block the agent).
    auto dir = open_dir(false);
    if (!dir || !*dir) return false;
    Fd fd(::openat(dir->get(), "finished", O_RDONLY | kOpenFlags));
    return fd && ours_regular(fd.get());
}

void CacheStore::mark_finished() {
    auto dir = open_dir(true);
    if (!dir) return;
    const int dfd = dir->get();
    Fd fd(::openat(dfd, "finished", O_WRONLY | O_CREAT | kOpenFlags, 0600));
    if (fd && ours_regular(fd.get())) return;
    // Something else by that name: replace it with our own marker.
    (void)::unlinkat(dfd, "finished", 0);
    Fd again(::openat(dfd, "finished", O_WRONLY | O_CREAT | O_EXCL | kOpenFlags, 0600));
}

void CacheStore::clear_finished() {
    auto dir = open_dir(false);
    if (dir && *dir) (void)::unlinkat(dir->get(), "finished", 0);
}

}  // namespace ca::agent
