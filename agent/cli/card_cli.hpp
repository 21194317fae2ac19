// SPDX-License-Identifier: MIT
// `crypt-agent card ...`: look at readers and cards, and derive volume
// passphrases from the card (for tests and demos).
//
//   card list [--login] [--json=MODE] [SETTINGS]
//                                          PC/SC readers, then the PKCS#11 module's tokens
//                                          and their private keys with their URIs (--login:
//                                          the PIN through ask-password, for tokens that
//                                          hide keys before login)
//   card status [--json=MODE] [SETTINGS]   readers, cards, ATR, profile match, PIN tries
//                                          left (never spends a try); with card-uri the
//                                          token and key it chooses, without logging in
//   card derive --uuid U [--uuid U]... [--check-determinism] [SETTINGS]
//                                          prints one passphrase per --uuid, in order,
//                                          from the seed in card-seed-file
//   card watch [SETTINGS]                  logs reader/card events until SIGTERM
//
// SETTINGS: every command's settings (agent/config/options.hpp); the card-* ones apply here
// (card-reader, card-aid, card-command, card-challenge-length, card-pin-reference,
// card-watchdog, card-pin-timeout, card-wait, card-allow-last-pin-try, card-seed-file,
// card-select-p2, card-uri, card-module, card-pin-pad).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "agent/cli/json.hpp"

namespace ca::agent {

struct GlobalOptions;  // agent/config/options.hpp

// What the card commands need from the global options.
struct CardCliEnv {
    std::filesystem::path ask_dir = "/run/systemd/ask-password";
};

// The card command's own arguments (the settings come from GlobalOptions).
struct CardArgs {
    std::string command;             // list, status, derive or watch
    std::vector<std::string> uuids;  // derive
    bool check_determinism = false;  // derive
    bool login = false;              // list
    JsonMode json = JsonMode::off;   // list, status
};

// Entry point for the CLI dispatcher; returns the process exit code
// (0 success, 1 failure, 2 usage error, 130/143 interrupted).
int card_main(const CardArgs& a, const GlobalOptions& global);

}  // namespace ca::agent
