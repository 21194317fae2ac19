// SPDX-License-Identifier: MIT
// Where the boot-scoped cache lives between agent instances.
//
// The kernel keyring is the default store: it survives switch-root, is never on a
// filesystem, and its key timeout is a second, kernel-enforced bound on the
// cache's lifetime.  Where keyrings are missing (CONFIG_KEYS=n, or a seccomp
// filter), a 0600 file on the tmpfs /run is the fallback; /run also survives
// switch-root.  A "finished" marker (no secret in it) records that `finish` ran,
// so an instance still running cannot write the cache back afterwards.
#pragma once

#include <optional>
#include <string>

#include "agent/config/options.hpp"
#include "agent/fd.hpp"
#include "proto/cache_codec.hpp"
#include "proto/result.hpp"

namespace ca::agent {

inline constexpr const char* kCacheKeyName = "crypt-agent:cache";

enum class StoreKind { keyring, file };
[[nodiscard]] const char* to_string(StoreKind k) noexcept;

struct LoadResult {
    std::optional<proto::CachePayload> payload;  // nullopt: nothing cached (or expired, now removed)
    std::optional<StoreKind> from;
    bool expired = false;  // a payload past its bound was found and removed
    std::string warning;   // a store that could not be read, for the log
};

struct FlushReport {
    bool keyring_key = false;    // our key was invalidated
    bool file = false;           // the fallback file was overwritten and unlinked
    bool systemd_entry = false;  // systemd's "cryptsetup" entry was invalidated
    std::string errors;          // what could not be removed, for the log and the exit status
};

class CacheStore {
public:
    explicit CacheStore(const GlobalOptions& o);

    [[nodiscard]] LoadResult load();
    // Saves to the keyring, or the file when the keyring is unavailable.
    // `ttl_s` becomes the key's kernel timeout.  Error: a reason for the log.
    // `fit`, when given, says what had to be left out to fit the key (proto::encode_cache).
    [[nodiscard]] proto::Expected<StoreKind, std::string> save(const proto::CachePayload& p,
                                                               proto::CacheFit* fit = nullptr);
    // Removes every copy.  With `systemd_entry`, systemd's "cryptsetup" entry too.
    FlushReport flush(bool systemd_entry);

    [[nodiscard]] bool finished() const;
    void mark_finished();
    void clear_finished();

    [[nodiscard]] std::string file_path() const;

    // Why the cache directory cannot be trusted (not a directory, a symlink, owned by another
    // uid, writable by group or others), or nullopt when it is fine or absent.  Checked as the
    // ask directory is: whoever can write there can plant `finished` (the agent then answers
    // nothing), a FIFO named `cache` (open() blocks), or move the cache file aside at flush.
    [[nodiscard]] std::optional<std::string> check_dir() const;

private:
    // The cache directory, opened and checked; an invalid Fd when it does not exist (and
    // `create` is false).  Every file in it is then opened relative to it.
    [[nodiscard]] proto::Expected<Fd, std::string> open_dir(bool create) const;
    [[nodiscard]] proto::Expected<StoreKind, std::string> save_file(const proto::Secret& bytes);
    bool wipe_file(std::string& errors);
    const GlobalOptions& o_;
};

}  // namespace ca::agent
