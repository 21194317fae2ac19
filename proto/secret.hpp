// SPDX-License-Identifier: MIT
// A secret: bytes that are locked in memory, kept out of core dumps, wiped on
// destruction, move-only, and never converted to std::string.
//
// proto/ is otherwise free of system calls; the one exception is here: mlock
// and madvise(MADV_DONTDUMP) on the secret's own pages, because a secret that
// can reach swap or a core file is not a secret.  Failing to lock (RLIMIT_MEMLOCK)
// is not fatal: the bytes are still wiped, and `locked()` tells the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ca::proto {

class Secret {
public:
    Secret() noexcept = default;
    // `size` zero bytes in locked memory.
    explicit Secret(std::size_t size);
    // A locked copy of `bytes`.  The caller wipes its own copy.
    static Secret copy_of(std::span<const unsigned char> bytes);
    static Secret copy_of(std::string_view bytes) {
        return copy_of(
            std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()));
    }

    Secret(Secret&& other) noexcept;
    Secret& operator=(Secret&& other) noexcept;
    Secret(const Secret&) = delete;
    Secret& operator=(const Secret&) = delete;
    ~Secret();

    // An explicit copy; there is no copy constructor so copies are visible in review.
    [[nodiscard]] Secret clone() const;

    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] unsigned char* data() noexcept { return data_; }
    [[nodiscard]] const unsigned char* data() const noexcept { return data_; }
    [[nodiscard]] std::span<unsigned char> bytes() noexcept { return {data_, size_}; }
    [[nodiscard]] std::span<const unsigned char> bytes() const noexcept { return {data_, size_}; }
    // A view for APIs that take char (libcryptsetup, keyctl).  Never store it in a std::string.
    [[nodiscard]] const char* chars() const noexcept { return reinterpret_cast<const char*>(data_); }
    // Whether mlock succeeded for this allocation (false for an empty secret).
    [[nodiscard]] bool locked() const noexcept { return locked_; }

    // Shrinks the logical size, wiping the tail (e.g. to drop a trailing newline).
    void truncate(std::size_t new_size) noexcept;
    // Appends bytes, reallocating into new locked memory and wiping the old.
    void append(std::span<const unsigned char> more);

    // Constant-time comparison of contents.
    [[nodiscard]] bool equals(const Secret& other) const noexcept;
    [[nodiscard]] bool contains_byte(unsigned char b) const noexcept;

private:
    void release() noexcept;
    unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
    bool locked_ = false;
};

// Called once per process, the first time mlock fails for a secret (errno and bytes), so the
// agent can say so once: RLIMIT_MEMLOCK is 64 KiB on kernels before 5.16 and the units drop
// CAP_IPC_LOCK, and a silent failure leaves secrets in swappable memory.  Not called before a
// hook is set; the hook must not allocate a Secret.
using LockFailureHook = void (*)(int err, std::size_t bytes);
void set_lock_failure_hook(LockFailureHook hook) noexcept;

// Overwrites memory in a way the optimiser cannot remove.
void wipe(void* p, std::size_t n) noexcept;

// A keyed fingerprint for logs: 4 hex digits of SipHash-2-4 under a per-process
// random key, so logs can tell two secrets apart without revealing either.
// The key is set once at start (agent: from getrandom); it is never logged.
class FingerprintKey {
public:
    explicit FingerprintKey(std::span<const unsigned char, 16> key) noexcept;
    [[nodiscard]] std::string fingerprint(const Secret& s) const;
    [[nodiscard]] std::string fingerprint(std::span<const unsigned char> bytes) const;

private:
    std::uint64_t k0_, k1_;
};

// SipHash-2-4 (Aumasson and Bernstein), used for fingerprints and hashing Ids.
std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, std::span<const unsigned char> in) noexcept;

}  // namespace ca::proto
