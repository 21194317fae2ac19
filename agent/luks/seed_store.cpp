// SPDX-License-Identifier: MIT
#include "agent/luks/seed_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace ca::agent::luks {
namespace {

class TokenStore final : public SeedStore {
public:
    LuksResult<LoadedRecord> load(const Volume& v) override {
        auto token = v.read_agent_token();
        if (!token) return proto::unexpected(token.error());
        if (!*token) return LoadedRecord{};
        token_id_ = (*token)->first;
        auto rec = proto::decode_seed_token((*token)->second);
        if (!rec)
            return luks_error(LuksErrc::store, v.path() + ": the crypt-agent token " + std::to_string(token_id_) +
                                                   " is unreadable: " + rec.error().reason);
        return LoadedRecord{std::move(*rec), {}};
    }

    LuksStatus save(Volume& v, const proto::SeedRecord& r) override {
        if (r.generations().empty()) {
            if (token_id_ < 0) return Done{};
            auto st = v.write_agent_token(token_id_, {});
            if (st) token_id_ = -1;
            return st;
        }
        // LUKS2 refuses a token bound to a keyslot that does not exist, and a
        // pending generation's keyslot does not exist yet: bind the active ones.
        std::vector<int> bound;
        for (const auto& g : r.generations())
            if (v.keyslot_active(g.keyslot)) bound.push_back(g.keyslot);
        auto st = v.write_agent_token(token_id_, proto::encode_seed_token(r, bound));
        if (st && token_id_ < 0) {
            auto again = v.read_agent_token();
            if (again && *again) token_id_ = (*again)->first;
        }
        return st;
    }

    [[nodiscard]] std::string describe(const Volume&) const override {
        return "LUKS2 token" + (token_id_ >= 0 ? " " + std::to_string(token_id_) : std::string());
    }

private:
    int token_id_ = -1;
};

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    [[nodiscard]] int get() const { return fd_; }
    [[nodiscard]] bool ok() const { return fd_ >= 0; }

private:
    int fd_;
};

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

std::optional<std::string> read_small_file(const std::string& path, std::string& error) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.ok()) {
        if (errno != ENOENT) error = sys_error(path);
        return std::nullopt;
    }
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            error = sys_error(path);
            return std::nullopt;
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > 64 * 1024) {
            error = path + ": too large for a seed record";
            return std::nullopt;
        }
    }
    return out;
}

bool write_all(int fd, const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

class FileStore final : public SeedStore {
public:
    explicit FileStore(std::string dir) : dir_(std::move(dir)) {}

    LuksResult<LoadedRecord> load(const Volume& v) override {
        std::string err_primary, err_prev, why_primary;
        auto primary = read_small_file(primary_path(v), err_primary);
        if (primary) {
            auto rec = decode_for(v, *primary, why_primary);
            if (rec) return LoadedRecord{std::move(*rec), {}};
        }
        auto prev = read_small_file(prev_path(v), err_prev);
        if (prev) {
            std::string why_prev;
            auto rec = decode_for(v, *prev, why_prev);
            if (rec) {
                const std::string warning = primary ? primary_path(v) + " is unusable (" + why_primary +
                                                          "); using the previous generation " + prev_path(v)
                                                    : std::string();
                return LoadedRecord{std::move(*rec), warning};
            }
            if (primary)
                return luks_error(LuksErrc::store,
                                  v.path() + ": both seed records are unusable: " + why_primary + "; " + why_prev);
        }
        if (!err_primary.empty()) return luks_error(LuksErrc::store, err_primary);
        if (primary) return luks_error(LuksErrc::store, primary_path(v) + " is unusable: " + why_primary);
        return LoadedRecord{};
    }

    LuksStatus save(Volume& v, const proto::SeedRecord& r) override {
        if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
            return luks_error(LuksErrc::store, sys_error("cannot create " + dir_));
        Fd dirfd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dirfd.ok()) return luks_error(LuksErrc::store, sys_error(dir_));
        if (r.generations().empty()) return remove_record(v, dirfd.get());

        const std::string tmp = primary_path(v) + ".tmp";
        {
            Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
            if (!fd.ok()) return luks_error(LuksErrc::store, sys_error("cannot write " + tmp));
            const std::string text = proto::encode_store_record({v.uuid(), r});
            if (!write_all(fd.get(), text) || ::fsync(fd.get()) != 0)
                return luks_error(LuksErrc::store, sys_error("cannot write " + tmp));
        }
        // Keep the generation being replaced: a hard link keeps the primary name
        // in place the whole time, so a reader always finds one complete record.
        const std::string prev_tmp = prev_path(v) + ".tmp";
        ::unlink(prev_tmp.c_str());
        if (::link(primary_path(v).c_str(), prev_tmp.c_str()) == 0) {
            if (::rename(prev_tmp.c_str(), prev_path(v).c_str()) != 0)
                return luks_error(LuksErrc::store, sys_error("cannot keep " + prev_path(v)));
        } else if (errno != ENOENT) {
            return luks_error(LuksErrc::store, sys_error("cannot keep " + prev_path(v)));
        }
        if (::rename(tmp.c_str(), primary_path(v).c_str()) != 0)
            return luks_error(LuksErrc::store, sys_error("cannot replace " + primary_path(v)));
        if (::fsync(dirfd.get()) != 0) return luks_error(LuksErrc::store, sys_error("cannot sync " + dir_));
        return Done{};
    }

    [[nodiscard]] std::string describe(const Volume& v) const override { return primary_path(v); }

private:
    [[nodiscard]] std::string primary_path(const Volume& v) const { return dir_ + "/" + v.uuid() + ".rec"; }
    [[nodiscard]] std::string prev_path(const Volume& v) const { return primary_path(v) + ".prev"; }

    static std::optional<proto::SeedRecord> decode_for(const Volume& v, const std::string& text, std::string& why) {
        auto rec = proto::decode_store_record(text);
        if (!rec) {
            why = rec.error().reason;
            return std::nullopt;
        }
        if (rec->uuid != v.uuid()) {
            why = "it belongs to UUID " + rec->uuid;
            return std::nullopt;
        }
        return std::move(rec->record);
    }

    LuksStatus remove_record(const Volume& v, int dirfd) {
        // The older generation first: a crash in between must not leave only the
        // old file, which load() would take for the current record.
        for (const std::string& p : {prev_path(v), primary_path(v)})
            if (::unlink(p.c_str()) != 0 && errno != ENOENT)
                return luks_error(LuksErrc::store, sys_error("cannot remove " + p));
        if (::fsync(dirfd) != 0) return luks_error(LuksErrc::store, sys_error("cannot sync " + dir_));
        return Done{};
    }

    std::string dir_;
};

}  // namespace

std::unique_ptr<SeedStore> store_for(const Volume& v, const StoreOptions& opts) {
    if (v.is_luks2()) return std::make_unique<TokenStore>();
    return std::make_unique<FileStore>(opts.luks1_dir);
}

}  // namespace ca::agent::luks
