// SPDX-License-Identifier: MIT
// What the `card` subcommands share: their options and their log.  One file per group of
// subcommands: card_derive.cpp (derive, watch: they operate the card), card_report.cpp
// (list, status: they look at readers, cards and tokens), card_cli.cpp (the dispatch).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "agent/cli/card_cli.hpp"
#include "agent/cli/json.hpp"
#include "agent/log.hpp"
#include "smartcard/service.hpp"

namespace ca::agent::card_cmd {

namespace sc = ca::smartcard;

struct CardCommandOptions {
    sc::CardOptions card;
    std::chrono::seconds pin_timeout{180};
    // derive
    std::string seed_file;
    std::vector<std::string> uuids;
    std::chrono::milliseconds wait{30000};
    bool check_determinism = false;
    bool login = false;             // list
    JsonMode json = JsonMode::off;  // list, status
};

// Log lines carry journald's "<N>" priority prefix, like the rest of the agent.
class Log {
public:
    explicit Log(int level) : level_(level) {}
    void operator()(int prio, const std::string& text) const {
        if (prio <= level_) write_stderr_line(line_prefix(static_cast<Level>(prio)) + text);
    }
    void notice(const sc::Notice& n) const {
        (*this)(n.severity == sc::Notice::error ? 3 : n.severity == sc::Notice::warning ? 4 : 6, n.text);
    }

private:
    int level_;
};

int run_derive(const CardCommandOptions& o, const CardCliEnv& env, const Log& log);
int run_watch(const CardCommandOptions& o, const Log& log);
int run_list(const CardCommandOptions& o, const CardCliEnv& env, const Log& log);
int run_status(const CardCommandOptions& o, const Log& log);

}  // namespace ca::agent::card_cmd
