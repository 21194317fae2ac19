// SPDX-License-Identifier: MIT
// Command-line front end: parses arguments and the configuration file, then
// calls the command.  main() only calls this.
#pragma once

namespace ca::agent {
// Returns the exit status.  Start-up problems (bad option, bad configuration
// line) are reported on stderr with file, line and reason; status 2.
int main_cli(int argc, char** argv);
// No core dumps, no ptrace by other users: called before any secret exists.
void harden_process() noexcept;
}  // namespace ca::agent
