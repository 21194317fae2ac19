// SPDX-License-Identifier: MIT
#include "agent/luks/volume.hpp"

#include "agent/luks/cryptsetup_dl.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "proto/seed_token.hpp"

namespace ca::agent::luks {
namespace {

// systemd-cryptenroll's choice for random keys: PBKDF2 at the floor libcryptsetup
// accepts, no benchmark (a benchmark would raise the count to ~1 s of work).
constexpr std::uint32_t kCheapIterations = 1000;

LibraryLog g_library_log = nullptr;
bool g_library_debug = false;
// Where crypt_init's messages go: it runs before a device has its own callback.
thread_local std::string* t_opening = nullptr;

std::string_view trimmed(const char* msg) {
    std::string_view v(msg);
    while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
    return v;
}

LibraryMessage kind_of(int level) {
    switch (level) {
    case CRYPT_LOG_ERROR: return LibraryMessage::error;
    case CRYPT_LOG_NORMAL: return LibraryMessage::normal;
    case CRYPT_LOG_VERBOSE: return LibraryMessage::verbose;
    default: return LibraryMessage::debug;
    }
}

// Errors are kept (the last one) to explain our own error; every message goes to the log.
void route(int level, const char* msg, std::string* keep) {
    if (!msg) return;
    const bool kept = level == CRYPT_LOG_ERROR && keep;
    if (kept) *keep = std::string(trimmed(msg));
    if (g_library_log) g_library_log(kind_of(level), trimmed(msg), kept);
}

void capture_log(int level, const char* msg, void* usrptr) { route(level, msg, static_cast<std::string*>(usrptr)); }
void default_log(int level, const char* msg, void*) { route(level, msg, t_opening); }

std::string errno_text(int negative_errno) { return std::strerror(-negative_errno); }

// libcryptsetup is loaded on first use: its default log and debug level are set once it is.
void apply_library_log() {
    if (!g_library_log) return;
    cryptsetup::crypt_set_log_callback(nullptr, default_log, nullptr);
    cryptsetup::crypt_set_debug_level(g_library_debug ? CRYPT_DEBUG_ALL : CRYPT_DEBUG_NONE);
}

}  // namespace

void set_library_log(LibraryLog log, bool debug) noexcept {
    g_library_log = log;
    g_library_debug = debug;
}

LuksResult<Volume> Volume::open(const std::string& path) {
    if (std::string why = cryptsetup::load("reading a LUKS header"); !why.empty())
        return luks_error(LuksErrc::internal, path + ": " + why);
    Volume v;
    v.path_ = path;
    v.library_log_ = std::make_unique<std::string>();
    apply_library_log();
    t_opening = v.library_log_.get();
    int r = cryptsetup::crypt_init(&v.cd_, path.c_str());
    t_opening = nullptr;
    if (r < 0)  // libcryptsetup's words name the cause better than ENOTBLK's
        return luks_error(LuksErrc::open_failed,
                          path + ": cannot open: " + (v.library_log_->empty() ? errno_text(r) : *v.library_log_));
    cryptsetup::crypt_set_log_callback(v.cd_, capture_log, v.library_log_.get());
    r = cryptsetup::crypt_load(v.cd_, CRYPT_LUKS, nullptr);
    if (r < 0) return luks_error(LuksErrc::not_luks, path + ": no LUKS header could be read (" + errno_text(r) + ")");
    const char* type = cryptsetup::crypt_get_type(v.cd_);
    v.luks2_ = type && std::strcmp(type, CRYPT_LUKS2) == 0;
    const char* uuid = cryptsetup::crypt_get_uuid(v.cd_);
    if (!uuid || !*uuid) return luks_error(LuksErrc::not_luks, path + ": the LUKS header has no UUID");
    v.uuid_ = uuid;
    return v;
}

Volume::Volume(Volume&& o) noexcept
    : path_(std::move(o.path_)),
      uuid_(std::move(o.uuid_)),
      luks2_(o.luks2_),
      cd_(std::exchange(o.cd_, nullptr)),
      lock_fd_(std::exchange(o.lock_fd_, -1)),
      library_log_(std::move(o.library_log_)) {}

Volume& Volume::operator=(Volume&& o) noexcept {
    if (this != &o) {
        Volume old(std::move(*this));  // releases our handles when it goes out of scope
        path_ = std::move(o.path_);
        uuid_ = std::move(o.uuid_);
        luks2_ = o.luks2_;
        cd_ = std::exchange(o.cd_, nullptr);
        lock_fd_ = std::exchange(o.lock_fd_, -1);
        library_log_ = std::move(o.library_log_);
    }
    return *this;
}

Volume::~Volume() {
    if (cd_) cryptsetup::crypt_free(cd_);
    if (lock_fd_ >= 0) ::close(lock_fd_);
}

int Volume::keyslot_max() const noexcept { return cryptsetup::crypt_keyslot_max(luks2_ ? CRYPT_LUKS2 : CRYPT_LUKS1); }

bool Volume::keyslot_active(int slot) const {
    const crypt_keyslot_info info = cryptsetup::crypt_keyslot_status(cd_, slot);
    return info == CRYPT_SLOT_ACTIVE || info == CRYPT_SLOT_ACTIVE_LAST || info == CRYPT_SLOT_UNBOUND;
}

std::vector<int> Volume::active_keyslots() const {
    std::vector<int> out;
    for (int s = 0; s < keyslot_max(); ++s)
        if (keyslot_active(s)) out.push_back(s);
    return out;
}

std::optional<int> Volume::first_free_keyslot() const {
    for (int s = 0; s < keyslot_max(); ++s)
        if (cryptsetup::crypt_keyslot_status(cd_, s) == CRYPT_SLOT_INACTIVE) return s;
    return std::nullopt;
}

bool Volume::is_cheap_keyslot(int slot) const {
    crypt_pbkdf_type pbkdf{};
    if (cryptsetup::crypt_keyslot_get_pbkdf(cd_, slot, &pbkdf) < 0 || !pbkdf.type) return false;
    return std::strcmp(pbkdf.type, CRYPT_KDF_PBKDF2) == 0 && pbkdf.iterations <= kCheapIterations;
}

std::optional<std::string> Volume::keyslot_salt(int slot) const {
    if (slot < 0 || slot >= keyslot_max()) return std::nullopt;
    if (luks2_) {
        const char* json = nullptr;
        if (cryptsetup::crypt_dump_json(cd_, &json, 0) < 0 || !json) return std::nullopt;
        return proto::luks2_keyslot_salt(json, slot);
    }
    // LUKS1 on-disk header (big-endian): 208 bytes of fields, then 8 key blocks
    // of 48 bytes each: active (4), iterations (4), salt (32), offset, stripes.
    // libcryptsetup exposes no salt for LUKS1, and the header is public data.
    constexpr std::size_t kKeyBlocks = 208, kKeyBlockSize = 48, kSaltSize = 32;
    constexpr unsigned char kActive[4] = {0x00, 0xAC, 0x71, 0xF3};
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    unsigned char block[kKeyBlockSize];
    const auto offset = static_cast<off_t>(kKeyBlocks + kKeyBlockSize * static_cast<std::size_t>(slot));
    const ssize_t n = ::pread(fd, block, sizeof block, offset);
    ::close(fd);
    if (n != static_cast<ssize_t>(sizeof block) || std::memcmp(block, kActive, 4) != 0) return std::nullopt;
    return proto::to_hex(std::span<const unsigned char>(block + 8, kSaltSize));
}

bool Volume::opens(int slot, const proto::Secret& key) const {
    return cryptsetup::crypt_activate_by_passphrase(cd_, nullptr, slot, key.chars(), key.size(), 0) == slot;
}

std::optional<int> Volume::slot_opened_by(const proto::Secret& key) const {
    const int r = cryptsetup::crypt_activate_by_passphrase(cd_, nullptr, CRYPT_ANY_SLOT, key.chars(), key.size(), 0);
    if (r < 0) return std::nullopt;
    return r;
}

std::string Volume::last_library_error() const {
    return library_log_->empty() ? std::string() : " (" + *library_log_ + ")";
}

LuksStatus Volume::add_cheap_keyslot(int slot, const proto::Secret& unlock, const proto::Secret& new_key) {
    crypt_pbkdf_type pbkdf{};
    pbkdf.type = CRYPT_KDF_PBKDF2;
    pbkdf.hash = "sha256";
    pbkdf.iterations = kCheapIterations;
    pbkdf.flags = CRYPT_PBKDF_NO_BENCHMARK;
    int r = cryptsetup::crypt_set_pbkdf_type(cd_, &pbkdf);
    if (r < 0)
        return luks_error(LuksErrc::internal,
                          path_ + ": libcryptsetup refused PBKDF2 settings: " + errno_text(r) + last_library_error());
    library_log_->clear();
    r = cryptsetup::crypt_keyslot_add_by_passphrase(cd_, slot, unlock.chars(), unlock.size(), new_key.chars(),
                                                    new_key.size());
    if (r >= 0) return Done{};
    const std::string where = path_ + ": cannot add keyslot " + std::to_string(slot) + ": ";
    if (r == -ENOSPC || library_log_->find("No space") != std::string::npos)
        return luks_error(LuksErrc::keyslot_area_full, where +
                                                           "the keyslot area is full; remove an unused keyslot "
                                                           "(cryptsetup luksKillSlot) or enlarge the LUKS2 metadata" +
                                                           last_library_error());
    if (r == -EPERM && !library_log_->empty() && library_log_->find("passphrase") != std::string::npos)
        return luks_error(LuksErrc::wrong_key, where + "the unlocking key was refused");
    return luks_error(LuksErrc::header_write,
                      where + errno_text(r) + last_library_error() + "; is the device or image read-only?");
}

LuksStatus Volume::destroy_keyslot(int slot) {
    library_log_->clear();
    const int r = cryptsetup::crypt_keyslot_destroy(cd_, slot);
    if (r >= 0) return Done{};
    return luks_error(LuksErrc::header_write, path_ + ": cannot remove keyslot " + std::to_string(slot) + ": " +
                                                  errno_text(r) + last_library_error() +
                                                  "; is the device or image read-only?");
}

LuksResult<std::optional<std::pair<int, std::string>>> Volume::read_agent_token() const {
    for (int id = 0; id < cryptsetup::crypt_token_max(CRYPT_LUKS2); ++id) {
        const char* type = nullptr;
        const crypt_token_info info = cryptsetup::crypt_token_status(cd_, id, &type);
        if (info == CRYPT_TOKEN_INACTIVE || info == CRYPT_TOKEN_INVALID || !type) continue;
        if (std::strcmp(type, "crypt-agent") != 0) continue;
        const char* json = nullptr;
        const int r = cryptsetup::crypt_token_json_get(cd_, id, &json);
        if (r < 0 || !json)
            return luks_error(LuksErrc::internal,
                              path_ + ": cannot read token " + std::to_string(id) + ": " + errno_text(r));
        return std::optional<std::pair<int, std::string>>(std::pair{id, std::string(json)});
    }
    return std::optional<std::pair<int, std::string>>{};
}

LuksStatus Volume::write_agent_token(int id, const std::string& json) {
    library_log_->clear();
    const int r = cryptsetup::crypt_token_json_set(cd_, id < 0 ? CRYPT_ANY_TOKEN : id,
                                                   json.empty() ? nullptr : json.c_str());
    if (r >= 0) return Done{};
    return luks_error(LuksErrc::header_write, path_ + ": cannot write the crypt-agent token: " + errno_text(r) +
                                                  last_library_error() + "; is the device or image read-only?");
}

LuksStatus Volume::check_writable() const {
    const int fd = ::open(path_.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
        ::close(fd);
        return Done{};
    }
    return luks_error(LuksErrc::header_write, path_ + ": the LUKS header is read-only (" + std::strerror(errno) +
                                                  "): a read-only device or mount, or an immutable image (chattr +i)?");
}

LuksStatus Volume::lock_exclusive(const std::string& lock_dir) {
    if (lock_fd_ >= 0) return Done{};
    // A lock file of our own, named by UUID: libcryptsetup takes its own locks on
    // the device, and an flock of ours on the same file could deadlock against them.
    ::mkdir(lock_dir.c_str(), 0700);
    const std::string lock_path = lock_dir + "/" + uuid_ + ".lock";
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return luks_error(LuksErrc::open_failed,
                          path_ + ": cannot open the lock file " + lock_path + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        ::close(fd);
        if (e == EWOULDBLOCK)
            return luks_error(LuksErrc::busy, path_ +
                                                  ": another crypt-agent enroll or rotate "
                                                  "is working on this volume");
        return luks_error(LuksErrc::internal, path_ + ": cannot lock: " + std::strerror(e));
    }
    lock_fd_ = fd;
    return Done{};
}

}  // namespace ca::agent::luks
