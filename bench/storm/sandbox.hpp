// SPDX-License-Identifier: MIT
// The private world a storm runs in: its own mount namespace with a fresh
// tmpfs on /run/systemd (so agents that only know the standard path, like
// systemd's tty agent, see the private ask directory), its own anonymous
// session keyring, and a scratch directory for the password file and logs.
// The machine's real ask directory is never written: after mounting, the
// harness checks that the directory it will use is not the one it found.
#pragma once

#include <string>

namespace storm {

struct Sandbox {
    std::string ask_dir;   // /run/systemd/ask-password inside the namespace
    std::string work_dir;  // scratch, removed at exit unless kept
    std::string run_dir;   // /run/systemd/storm-run: a tmpfs directory, as /run is at boot
};

// Returns an empty string on success, else why the sandbox cannot be made.
// `missing` is set when the reason is an absent privilege or kernel feature
// (the caller exits 77), not a fault.
std::string enter_sandbox(Sandbox& box, bool& missing);

// Raises our own RLIMIT_NOFILE so that `fds` descriptors fit (each open
// question holds two).  Agents get 1024 regardless.
void raise_fd_limit(unsigned long fds);

void remove_tree(const std::string& dir);

}  // namespace storm
