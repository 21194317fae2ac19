// `crypt-agent card ...`: look at readers and cards, and derive volume
// passphrases from the card (for tests and demos until the seed store lands).
//
//   card status [PROFILE OPTIONS]                   readers, cards, ATR, profile match, PIN tries
//                                                  left (never spends a try)
//   card derive --seed-file F --uuid U [--uuid U]... [--wait S] [--check-determinism] [PROFILE OPTIONS]
//                                                  prints one passphrase per --uuid, in order
//   card watch [PROFILE OPTIONS]                    logs reader/card events until SIGTERM
//
// PROFILE OPTIONS: --reader SUBSTRING --aid HEX --command CLAINSP1P2 --challenge-length N
//                  --pin-reference HEX|none --watchdog SECONDS --pin-timeout SECONDS
//                  --allow-last-pin-try
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace ca::agent {

struct GlobalOptions;  // the CLI's global options (defined by the agent's CLI)

// What the card commands need from the global options.
struct CardCliEnv {
    std::filesystem::path ask_dir = "/run/systemd/ask-password";
    int log_level = 6;  // syslog priority: messages above it are dropped (7 = debug)
    // card-* settings from the configuration file and the command line (name, value), in order.
    std::vector<std::pair<std::string, std::string>> card_settings;
};

// Entry point for the CLI dispatcher; returns the process exit code
// (0 success, 1 failure, 2 usage error, 130/143 interrupted).
int card_main(const std::vector<std::string>& args, const CardCliEnv& env);
int card_main(const std::vector<std::string>& args, const GlobalOptions& global);

}  // namespace ca::agent
