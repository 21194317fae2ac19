// SPDX-License-Identifier: MIT
// Where a volume's seed record lives, readable before anything is unlocked.
//
// LUKS2: a crypt-agent token in the volume's own header.  libcryptsetup writes
// LUKS2 metadata atomically (two checksummed copies, sequence numbers), so one
// token update is one all-or-nothing step.
//
// LUKS1 has no tokens: a file per volume, <dir>/<uuid>.rec, written as
// new file -> fsync -> keep the old one as <uuid>.rec.prev -> rename -> fsync(dir).
// A record whose checksum fails is ignored in favour of the previous file.
// The directory must be readable where the agent runs first: for a LUKS1 root
// that means the initramfs (an unencrypted /boot, or an image rebuilt on change).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "agent/luks/volume.hpp"
#include "proto/seed_token.hpp"

namespace ca::agent::luks {

struct StoreOptions {
    std::string luks1_dir = CRYPT_AGENT_LUKS1_STORE;  // LUKS1 records (card-luks1-dir; CMake sets it)
    std::string lock_dir = "/run/crypt-agent";        // per-volume run locks
};

struct LoadedRecord {
    std::optional<proto::SeedRecord> record;  // nullopt: the volume is not enrolled
    std::string warning;                      // e.g. "primary record corrupt, used the previous one"
};

class SeedStore {
public:
    virtual ~SeedStore() = default;
    virtual LuksResult<LoadedRecord> load(const Volume& v) = 0;
    // Atomically replaces the record.  A record naming no generation removes it.
    virtual LuksStatus save(Volume& v, const proto::SeedRecord& r) = 0;
    [[nodiscard]] virtual std::string describe(const Volume& v) const = 0;
};

// The token store for LUKS2 volumes, the file store for LUKS1.
std::unique_ptr<SeedStore> store_for(const Volume& v, const StoreOptions& opts);

}  // namespace ca::agent::luks
