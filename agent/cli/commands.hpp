// SPDX-License-Identifier: MIT
// The commands besides `serve`.  Each returns the process exit status and
// prints for a person on stdout, problems on stderr (through the log).
#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "agent/cli/json.hpp"
#include "agent/config/options.hpp"
#include "proto/result.hpp"
#include "proto/secret.hpp"

namespace ca::agent {

struct CachePutArgs {
    std::optional<std::chrono::seconds> ttl;
    std::vector<std::string> match;  // Id globs this secret may answer; empty = the agent's patterns
};

int cmd_cache_put(const GlobalOptions& o, const CachePutArgs& a);
int cmd_cache_status(const GlobalOptions& o, JsonMode mode = JsonMode::off);
int cmd_cache_flush(const GlobalOptions& o);
int cmd_list(const GlobalOptions& o, JsonMode mode = JsonMode::off);
int cmd_finish(const GlobalOptions& o);

// Tells a running agent to look at the cache again (it watches the ask directory:
// IN_ATTRIB on the directory itself, the same nudge systemd gives after a push).
void touch_ask_dir(const GlobalOptions& o);

// Reads one secret from standard input into locked memory (at most `max` bytes),
// without echo when stdin is a terminal; strips one trailing newline.
proto::Expected<proto::Secret, std::string> read_secret_stdin(std::size_t max, const char* prompt);

}  // namespace ca::agent
