// SPDX-License-Identifier: MIT
// `crypt-agent card ...`: from the command line to one subcommand.
#include "agent/cli/card_cli.hpp"

#include <iostream>
#include <string>

#include "agent/cli/card_cmd.hpp"
#include "agent/config/options.hpp"

namespace ca::agent {

int card_main(const CardArgs& a, const GlobalOptions& global) {
    const card_cmd::Log log(static_cast<int>(global.log_level));
    CardCliEnv env;
    env.ask_dir = global.ask_dir;
    card_cmd::CardCommandOptions o;
    o.card = global.card.card;
    o.pin_timeout = global.card.pin_timeout;
    o.seed_file = global.card.seed_file.string();
    o.uuids = a.uuids;
    o.wait = global.card.wait;
    o.check_determinism = a.check_determinism;
    o.login = a.login;
    o.json = a.json;
    if (a.json != JsonMode::off && a.command != "list" && a.command != "status") {
        std::cerr << "crypt-agent card " << a.command << ": --json applies to card list and card status\n";
        return 2;
    }
    if (a.command == "list") return card_cmd::run_list(o, env, log);
    if (a.command == "status") return card_cmd::run_status(o, log);
    if (a.command == "watch") return card_cmd::run_watch(o, log);
    if (a.command == "derive") {
        if (o.seed_file.empty() || o.uuids.empty()) {
            std::cerr << "crypt-agent card derive: needs --card-seed-file FILE and at least one --uuid UUID\n";
            return 2;
        }
        return card_cmd::run_derive(o, env, log);
    }
    std::cerr << "crypt-agent card: unknown card command '" << a.command
              << "'; expected list, status, derive or watch\n";
    return 2;
}

}  // namespace ca::agent
