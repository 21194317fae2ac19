// SPDX-License-Identifier: MIT
// Test driver: runs the real enroll/rotate command code (agent/luks_cli) with
// the software card, and inspects volumes the way an administrator would.
//
//   luks_tool enroll|rotate ARGS...             `crypt-agent enroll|rotate ARGS...` (the real
//                                               command line), with the software card
//   luks_tool key [--card-luks1-dir D] VOL      print the current agent key (tests only)
//   luks_tool check [--card-luks1-dir D] [--strict] --passphrase-file F VOL...
//       per volume: does the key the record names open its keyslot, does the
//       person's passphrase open, which keyslots are neither (leaks).
//       exit 0 fine; 3 a lockout (nothing we know opens); 4 a leak or a
//       record-named key that fails (with --strict: also an unfinished record).
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "agent/cli/cli.hpp"
#include "agent/cli/luks_cli.hpp"
#include "agent/luks/rotation.hpp"
#include "agent/luks/volume.hpp"
#include "smartcard/derive.hpp"
#include "tests/luks/software_card.hpp"

namespace {

using namespace ca;

struct ToolArgs {
    agent::luks::StoreOptions store;
    bool strict = false;
    std::string passphrase_file;
    std::vector<std::string> volumes;
};

ToolArgs parse(const std::vector<std::string>& args) {
    ToolArgs t;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--card-luks1-dir" && i + 1 < args.size()) t.store.luks1_dir = args[++i];
        else if (args[i] == "--strict") t.strict = true;
        else if (args[i] == "--passphrase-file" && i + 1 < args.size()) t.passphrase_file = args[++i];
        else t.volumes.push_back(args[i]);
    }
    return t;
}

std::optional<proto::Secret> key_of(const agent::luks::VolumeSeeds& seeds, const proto::SeedGeneration& g) {
    auto response = test::software_card_response(g.seed);
    if (!response) return std::nullopt;
    return smartcard::derive_volume_key(*response, g.seed, seeds.uuid);
}

int print_key(const ToolArgs& t) {
    if (t.volumes.size() != 1) return 2;
    auto seeds = agent::luks::candidates_for_volume(t.volumes[0], t.store);
    if (!seeds || seeds->generations.empty()) return 1;
    auto key = key_of(*seeds, seeds->generations.front());
    if (!key) return 1;
    std::fwrite(key->data(), 1, key->size(), stdout);
    return 0;
}

std::string describe(const proto::SeedGeneration& g) {
    return std::to_string(g.generation) + "/slot" + std::to_string(g.keyslot);
}

int check_one(const std::string& path, const ToolArgs& t, const proto::Secret& person) {
    auto seeds = agent::luks::candidates_for_volume(path, t.store);
    auto vol = agent::luks::Volume::open(path);
    if (!seeds || !vol) {
        std::printf("%s: unreadable: %s\n", path.c_str(),
                    !vol ? vol.error().message.c_str() : seeds.error().message.c_str());
        return 3;
    }
    const auto person_slot = vol->slot_opened_by(person);
    bool current_opens = false;
    std::string named;
    std::vector<int> ours;
    for (std::size_t i = 0; i < seeds->generations.size(); ++i) {
        const auto& g = seeds->generations[i];
        named += (named.empty() ? "" : ",") + describe(g);
        auto key = key_of(*seeds, g);
        const bool opens = key && vol->opens(g.keyslot, *key);
        if (i == 0) current_opens = opens;
        if (opens) ours.push_back(g.keyslot);
    }
    // A slot the record names but no key opens is a destroy cut short (key
    // material wiped, header not yet rewritten): the next run removes it, so it
    // is "retiring", not leaked.  A leak is an active slot nothing accounts for.
    std::string leaked, retiring;
    for (int s : vol->active_keyslots()) {
        bool known = person_slot && *person_slot == s;
        for (int o : ours) known = known || o == s;
        if (known) continue;
        bool named_slot = false;
        for (const auto& g : seeds->generations) named_slot = named_slot || g.keyslot == s;
        std::string& list = named_slot ? retiring : leaked;
        list += (list.empty() ? "" : ",") + std::to_string(s);
    }
    std::printf("%s: record=[%s] current_opens=%d person_opens=%d retiring=[%s] leaked=[%s]\n", path.c_str(),
                named.c_str(), current_opens ? 1 : 0, person_slot ? 1 : 0, retiring.c_str(), leaked.c_str());
    if (t.strict && !retiring.empty()) return 4;
    if (!current_opens && !person_slot) return 3;
    if (!current_opens || !leaked.empty()) return 4;
    if (t.strict && seeds->generations.size() != 1) return 4;
    return 0;
}

int check(const ToolArgs& t) {
    std::ifstream in(t.passphrase_file);
    std::string text;
    std::getline(in, text);  // the person's passphrase: one line
    const proto::Secret person = proto::Secret::copy_of(text);
    proto::wipe(text.data(), text.size());
    int worst = 0;
    for (const auto& v : t.volumes) {
        const int r = check_one(v, t, person);
        if (r == 3 || (r == 4 && worst == 0)) worst = r;
    }
    return worst;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: luks_tool enroll|rotate|key|check ARGS...\n");
        return 2;
    }
    const std::string cmd = argv[1];
    const std::vector<std::string> args(argv + 2, argv + argc);
    if (cmd == "enroll" || cmd == "rotate") {
        agent::set_card_opener(
            [](const std::string&, const std::string&) -> agent::luks::LuksResult<agent::luks::CardAccess> {
                return test::software_card();
            });
        return agent::main_cli(argc, argv);
    }
    if (cmd == "key") return print_key(parse(args));
    if (cmd == "check") return check(parse(args));
    std::fprintf(stderr, "luks_tool: unknown command %s\n", cmd.c_str());
    return 2;
}
