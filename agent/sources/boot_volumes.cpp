// SPDX-License-Identifier: MIT
#include "agent/sources/boot_volumes.hpp"

#include <algorithm>
#include <fstream>

#include "agent/config/crypttab.hpp"

namespace ca::agent {

std::vector<std::string> boot_volume_ids(const std::filesystem::path& cmdline, const std::filesystem::path& crypttab) {
    std::vector<std::string> ids;
    auto add = [&](const std::string& source) {
        if (source.empty() || source[0] != '/') return;
        std::string id = "cryptsetup:" + source;
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(std::move(id));
    };
    std::ifstream cl(cmdline);
    std::string word;
    while (cl >> word) {
        std::string uuid;
        if (word.rfind("rd.luks.uuid=", 0) == 0) uuid = word.substr(13);
        else if (word.rfind("rd.luks.name=", 0) == 0) uuid = word.substr(13, word.find('=', 13) - 13);
        else continue;
        if (uuid.rfind("luks-", 0) == 0) uuid = uuid.substr(5);
        if (uuid.size() == 36) add(resolve_source("UUID=" + uuid));
    }
    for (const auto& source : crypttab_sources(crypttab)) add(source);
    return ids;
}

}  // namespace ca::agent
