// SPDX-License-Identifier: MIT
#include "proto/secret.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

namespace ca::proto {

void wipe(void* p, std::size_t n) noexcept {
    if (p == nullptr || n == 0) return;
    // explicit_bzero is not removable by the optimiser (glibc >= 2.25).
    explicit_bzero(p, n);
}

namespace {

// Secrets are small (<= a few KiB); give each its own pages so mlock and
// MADV_DONTDUMP cover exactly the secret and nothing else.
constexpr std::size_t kPage = 4096;

std::size_t round_up(std::size_t n) { return (n + kPage - 1) / kPage * kPage; }

std::atomic<LockFailureHook> g_lock_hook{nullptr};
std::atomic<bool> g_lock_failure_told{false};

unsigned char* allocate(std::size_t capacity, bool& locked) {
    void* p = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    (void)madvise(p, capacity, MADV_DONTDUMP);
    (void)madvise(p, capacity, MADV_DONTFORK);
    locked = mlock(p, capacity) == 0;
    if (!locked) {
        const int e = errno;
        if (auto hook = g_lock_hook.load(); hook != nullptr && !g_lock_failure_told.exchange(true)) hook(e, capacity);
    }
    return static_cast<unsigned char*>(p);
}

void deallocate(unsigned char* p, std::size_t capacity, bool locked) noexcept {
    wipe(p, capacity);
    if (locked) (void)munlock(p, capacity);
    (void)munmap(p, capacity);
}

}  // namespace

void set_lock_failure_hook(LockFailureHook hook) noexcept { g_lock_hook.store(hook); }

Secret::Secret(std::size_t size) {
    if (size == 0) return;
    capacity_ = round_up(size);
    data_ = allocate(capacity_, locked_);
    size_ = size;
}

Secret Secret::copy_of(std::span<const unsigned char> bytes) {
    Secret s(bytes.size());
    if (!bytes.empty()) std::memcpy(s.data_, bytes.data(), bytes.size());
    return s;
}

Secret::Secret(Secret&& other) noexcept
    : data_(other.data_), size_(other.size_), capacity_(other.capacity_), locked_(other.locked_) {
    other.data_ = nullptr;
    other.size_ = other.capacity_ = 0;
    other.locked_ = false;
}

Secret& Secret::operator=(Secret&& other) noexcept {
    if (this != &other) {
        release();
        data_ = other.data_;
        size_ = other.size_;
        capacity_ = other.capacity_;
        locked_ = other.locked_;
        other.data_ = nullptr;
        other.size_ = other.capacity_ = 0;
        other.locked_ = false;
    }
    return *this;
}

Secret::~Secret() { release(); }

void Secret::release() noexcept {
    if (data_ != nullptr) deallocate(data_, capacity_, locked_);
    data_ = nullptr;
    size_ = capacity_ = 0;
    locked_ = false;
}

Secret Secret::clone() const { return copy_of(bytes()); }

void Secret::truncate(std::size_t new_size) noexcept {
    if (new_size >= size_) return;
    wipe(data_ + new_size, size_ - new_size);
    size_ = new_size;
}

void Secret::append(std::span<const unsigned char> more) {
    if (more.empty()) return;
    if (size_ + more.size() <= capacity_) {
        std::memcpy(data_ + size_, more.data(), more.size());
        size_ += more.size();
        return;
    }
    Secret bigger(size_ + more.size());
    if (size_ != 0) std::memcpy(bigger.data_, data_, size_);
    std::memcpy(bigger.data_ + size_, more.data(), more.size());
    *this = std::move(bigger);
}

bool Secret::equals(const Secret& other) const noexcept {
    if (size_ != other.size_) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < size_; ++i) diff |= static_cast<unsigned char>(data_[i] ^ other.data_[i]);
    return diff == 0;
}

bool Secret::contains_byte(unsigned char b) const noexcept {
    return std::find(data_, data_ + size_, b) != data_ + size_;
}

// ---- SipHash-2-4 ------------------------------------------------------------

namespace {
constexpr std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }
std::uint64_t load64(const unsigned char* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}
struct SipState {
    std::uint64_t v0, v1, v2, v3;
    void round() {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    }
};
}  // namespace

std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, std::span<const unsigned char> in) noexcept {
    SipState s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
               k1 ^ 0x7465646279746573ULL};
    const std::size_t n = in.size();
    const std::size_t full = n - n % 8;
    for (std::size_t i = 0; i < full; i += 8) {
        std::uint64_t m = load64(in.data() + i);
        s.v3 ^= m;
        s.round();
        s.round();
        s.v0 ^= m;
    }
    std::uint64_t b = static_cast<std::uint64_t>(n) << 56;
    for (std::size_t i = full; i < n; ++i) b |= static_cast<std::uint64_t>(in[i]) << (8 * (i - full));
    s.v3 ^= b;
    s.round();
    s.round();
    s.v0 ^= b;
    s.v2 ^= 0xff;
    s.round();
    s.round();
    s.round();
    s.round();
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

FingerprintKey::FingerprintKey(std::span<const unsigned char, 16> key) noexcept
    : k0_(load64(key.data())), k1_(load64(key.data() + 8)) {}

std::string FingerprintKey::fingerprint(std::span<const unsigned char> bytes) const {
    const auto h = siphash24(k0_, k1_, bytes);
    char buf[5];
    std::snprintf(buf, sizeof buf, "%04x", static_cast<unsigned>(h & 0xffffU));
    return buf;
}

std::string FingerprintKey::fingerprint(const Secret& s) const { return fingerprint(s.bytes()); }

}  // namespace ca::proto
