// SPDX-License-Identifier: MIT
#include "agent/cache/keyring.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#include "agent/fault.hpp"

namespace ca::agent::keyring {

key_serial_t special_id(KeyringKind k) noexcept {
    return k == KeyringKind::user ? KEY_SPEC_USER_KEYRING : KEY_SPEC_SESSION_KEYRING;
}

proto::Expected<key_serial_t, int> find(KeyringKind k, const std::string& description) {
    if (fault::no_keyring()) return proto::unexpected(ENOSYS);
    long id = keyctl_search(special_id(k), "user", description.c_str(), 0);
    if (id < 0) return proto::unexpected(errno);
    return static_cast<key_serial_t>(id);
}

proto::Expected<proto::Secret, int> read(key_serial_t key) {
    // Ask for the size, then read into locked memory; retry if the key grew between.
    for (int attempt = 0; attempt < 4; ++attempt) {
        long size = keyctl_read(key, nullptr, 0);
        if (size < 0) return proto::unexpected(errno);
        proto::Secret buf(static_cast<std::size_t>(size) + 1);
        long got = keyctl_read(key, reinterpret_cast<char*>(buf.data()), buf.size());
        if (got < 0) return proto::unexpected(errno);
        if (got <= size) {
            buf.truncate(static_cast<std::size_t>(got));
            return buf;
        }
    }
    return proto::unexpected(EAGAIN);
}

proto::Expected<bool, int> ours(key_serial_t key) {
    // "type;uid;gid;perm;description"
    char buf[256];
    const long n = keyctl_describe(key, buf, sizeof buf);
    if (n < 0) return proto::unexpected(errno);
    buf[sizeof buf - 1] = 0;
    const char* uid = std::strchr(buf, ';');
    if (uid == nullptr) return proto::unexpected(EINVAL);
    char* end = nullptr;
    const unsigned long v = std::strtoul(uid + 1, &end, 10);
    if (end == uid + 1 || *end != ';') return proto::unexpected(EINVAL);
    return v == static_cast<unsigned long>(geteuid());
}

proto::Expected<key_serial_t, int> put(KeyringKind k, const std::string& description,
                                       std::span<const unsigned char> payload, unsigned timeout_s) {
    if (fault::no_keyring()) return proto::unexpected(ENOSYS);
    // A new key starts with the kernel's default rights (possessor-all).  It is made in our
    // thread keyring, which no other process possesses, given owner-only rights there, and only
    // then linked where others look; the link displaces any key of that name, one planted by
    // another uid included, so nothing secret is ever written into a key that is not ours.
    // (Not a placeholder then KEYCTL_UPDATE: an update carries at most one page.)
    key_serial_t id = add_key("user", description.c_str(), payload.data(), payload.size(), KEY_SPEC_THREAD_KEYRING);
    if (id < 0) return proto::unexpected(errno);
    struct Unstage {
        key_serial_t id;
        ~Unstage() { (void)keyctl_unlink(id, KEY_SPEC_THREAD_KEYRING); }
    } unstage{id};
    if (keyctl_setperm(id, KEY_USR_ALL) < 0 || (timeout_s != 0 && keyctl_set_timeout(id, timeout_s) < 0) ||
        keyctl_link(id, special_id(k)) < 0) {
        const int e = errno;
        (void)keyctl_invalidate(id);
        return proto::unexpected(e);
    }
    return id;
}

proto::Expected<bool, int> remove(KeyringKind k, const std::string& description) {
    auto id = find(k, description);
    if (!id) {
        if (id.error() == ENOSYS) return false;  // no keyrings: nothing to remove
        if (id.error() == ENOKEY || id.error() == EKEYEXPIRED || id.error() == EKEYREVOKED) return false;
        return proto::unexpected(id.error());
    }
    if (keyctl_invalidate(*id) < 0) {
        // Old kernels without KEYCTL_INVALIDATE: revoke, then unlink.
        if (keyctl_revoke(*id) < 0) return proto::unexpected(errno);
        (void)keyctl_unlink(*id, special_id(k));
    }
    return true;
}

}  // namespace ca::agent::keyring
