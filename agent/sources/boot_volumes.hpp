// SPDX-License-Identifier: MIT
// Which volumes the initramfs will ask for, known before any of them asks (card-early).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ca::agent {

// The volumes the initramfs will ask for, as systemd-cryptsetup names them:
// rd.luks.uuid= and rd.luks.name= on the kernel command line (`cmdline`), and
// the sources in `crypttab`; UUID= becomes /dev/disk/by-uuid/.  Question Ids
// ("cryptsetup:/dev/disk/by-uuid/<uuid>"), without duplicates.  Missing files
// give nothing.
[[nodiscard]] std::vector<std::string> boot_volume_ids(const std::filesystem::path& cmdline,
                                                       const std::filesystem::path& crypttab);

}  // namespace ca::agent
