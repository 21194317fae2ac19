// Test driver for `crypt-agent card ...`: the same card_main the agent's CLI
// dispatches to, without needing the rest of the agent.  Global options it
// understands (before the card command): --ask-dir DIR, --log-level N.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "agent/card_cli.hpp"

// The agent's level names (as `crypt-agent --log-level` takes them) or a number.
static int level_of(const std::string& s) {
    const char* names[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};
    for (int i = 0; i < 8; ++i)
        if (s == names[i]) return i;
    return std::atoi(s.c_str());
}

int main(int argc, char** argv) {
    ca::agent::CardCliEnv env;
    std::vector<std::string> args(argv + 1, argv + argc);
    while (args.size() >= 2 && (args[0] == "--ask-dir" || args[0] == "--log-level")) {
        if (args[0] == "--ask-dir") env.ask_dir = args[1];
        else env.log_level = level_of(args[1]);
        args.erase(args.begin(), args.begin() + 2);
    }
    if (!args.empty() && args[0] == "card") args.erase(args.begin());
    return ca::agent::card_main(args, env);
}
