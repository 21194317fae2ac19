// SPDX-License-Identifier: MIT
#include "agent/sources/seed_lookup.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string_view>

#include "agent/config/crypttab.hpp"
#include "agent/log.hpp"
#include "agent/luks/rotation.hpp"
#include "smartcard/profile.hpp"

namespace ca::agent {
namespace {

namespace sc = ca::smartcard;

// A seed file holds raw bytes, or the same bytes as hex text.
std::vector<unsigned char> read_seed_file(const std::filesystem::path& path, std::size_t length) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read card-seed-file " + path.string());
    std::vector<unsigned char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string text(raw.begin(), raw.end());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.size() == 2 * length)
        if (auto d = sc::unhex(text); d && d->size() == length) return *d;
    if (raw.size() != length)
        throw std::runtime_error("card-seed-file " + path.string() + " holds " + std::to_string(raw.size()) +
                                 " bytes; the card profile needs " + std::to_string(length));
    return raw;
}

// systemd-cryptsetup's Id is "cryptsetup:" + the source device as crypttab names it.
std::optional<std::string> device_of(const std::string& id) {
    static constexpr std::string_view prefix = "cryptsetup:";
    if (id.rfind(prefix, 0) != 0) return std::nullopt;
    std::string dev = resolve_source(id.substr(prefix.size()));
    if (dev.empty() || dev[0] != '/') return std::nullopt;
    return dev;
}

}  // namespace

SeedLookup make_seed_lookup(const CardSourceConfig& c) {
    std::optional<std::vector<unsigned char>> seed;
    if (!c.volumes.empty()) {
        if (c.seed_file.empty()) throw std::runtime_error("card-volume is set but card-seed-file is not");
        seed = read_seed_file(c.seed_file, c.card.profile.challenge_length);
    }
    const auto volumes = c.volumes;
    const bool tokens = c.luks_tokens;
    const std::string luks1_dir = c.luks1_dir;
    return [seed, volumes, tokens, luks1_dir](const std::string& id) -> std::optional<VolumeSeedSet> {
        if (auto it = volumes.find(id); it != volumes.end()) return VolumeSeedSet{it->second, {*seed}};
        if (!tokens) return std::nullopt;
        auto dev = device_of(id);
        if (!dev) return std::nullopt;
        luks::StoreOptions so;
        so.luks1_dir = luks1_dir;
        auto r = luks::candidates_for_volume(*dev, so);
        if (!r) {
            CA_LOG(debug) << "'" << escaped(id) << "' has no smartcard seed record: " << r.error().message;
            return std::nullopt;
        }
        VolumeSeedSet set{r->uuid, {}, true};
        for (const auto& g : r->generations) set.seeds.push_back(g.seed);
        if (set.seeds.empty()) return std::nullopt;
        return set;
    };
}

}  // namespace ca::agent
