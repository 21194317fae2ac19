// SPDX-License-Identifier: MIT
// The askers of one run, in worker processes.
//
// Each open question holds two descriptors (the ask file, kept open as
// systemd keeps it, and the reply socket), and a process may not be allowed
// more than 20,000 (this machine's hard limit, which root in a container
// cannot raise).  So a storm is split over as many worker processes as the
// limit needs; at a real boot every question has its own asker process anyway.
//
// Protocol, per worker, over two pipes:  worker prepares its tmp files and
// sockets and says 'P'; on 'G' it renames them all (publishes) and says 'D';
// then it collects replies until done, the deadline, or idle, and writes its
// totals and one record per decided question.
#pragma once

#include <sys/types.h>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/storm/asker.hpp"

namespace storm {

struct Record {
    std::int64_t published_ns;
    std::int64_t received_ns;
    ReplyKind kind;  // right, wrong or cancel
};

struct SliceConfig {
    std::string ask_dir;
    std::string password;
    unsigned first_index = 0;  // Id=cryptsetup:/dev/bench-<index>
    unsigned n = 0;
    unsigned concurrency = 0;  // 0: all at once
    int timeout_ms = 120'000;
    int idle_ms = 2'000;
};

struct Collected {
    unsigned duplicates = 0, ignored = 0;
    std::vector<Record> records;
    std::string error;  // first worker error, if any
};

class Workers {
public:
    Workers() = default;
    Workers(const Workers&) = delete;
    Workers& operator=(const Workers&) = delete;
    ~Workers();

    // Forks enough workers for `total` questions and waits until each has
    // prepared its questions.  Returns false with `error` set on failure.
    bool prepare(const SliceConfig& whole, std::string& error);
    // Publishes every prepared question; returns once all are renamed.
    bool publish(std::string& error);
    // Waits for the workers to finish and merges their results.
    Collected collect();

private:
    struct Worker {
        pid_t pid = -1;
        int ctl = -1;   // parent -> worker
        int data = -1;  // worker -> parent
    };
    bool wait_byte(char expected, std::string& error);
    void reap();
    std::vector<Worker> workers_;
};

// Per-process questions this process can hold, from RLIMIT_NOFILE.
unsigned questions_per_process();

}  // namespace storm
