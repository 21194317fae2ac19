// SPDX-License-Identifier: MIT
#include "agent/config/crypttab.hpp"

#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>

namespace ca::agent {

std::string resolve_source(const std::string& source) {
    static constexpr std::pair<std::string_view, std::string_view> kinds[] = {
        {"UUID=", "/dev/disk/by-uuid/"},
        {"PARTUUID=", "/dev/disk/by-partuuid/"},
        {"LABEL=", "/dev/disk/by-label/"},
        {"PARTLABEL=", "/dev/disk/by-partlabel/"}};
    for (const auto& [prefix, dir] : kinds)
        if (source.rfind(prefix, 0) == 0) return std::string(dir) + source.substr(prefix.size());
    return source;
}

std::vector<std::string> crypttab_sources(const std::filesystem::path& path) {
    std::vector<std::string> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string name, source;
        if (!(fields >> name >> source) || name[0] == '#') continue;
        out.push_back(resolve_source(source));
    }
    return out;
}

}  // namespace ca::agent
