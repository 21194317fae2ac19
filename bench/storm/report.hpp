// SPDX-License-Identifier: MIT
// Turning runs into a table (medians over repetitions, ratios to the floor
// agent), a CSV file (one row per run) and an SVG plot of the latency
// distributions (written by hand: no plotting dependency).
#pragma once

#include "bench/storm/scenario.hpp"

#include <ostream>
#include <string>
#include <vector>

namespace storm {

// Nearest-rank percentile of an unsorted sample; -1 when empty.
double percentile(std::vector<double> v, double p);
double median(std::vector<double> v);

// Prints one table row per (agent, scenario, N) with medians over its reps.
void print_table(std::ostream& out, const std::vector<RunResult>& runs);
// Lines "storm-result key=value ..." per (agent, scenario, N), then the last
// line "storm-total ...": sums over every run, for scripts and the self-test.
void print_machine_lines(std::ostream& out, const std::vector<RunResult>& runs);
// For every agent but the floor: the targets (CPU per question at
// most 1.5x the floor's in a live storm, live p99 under 1 ms, start to first
// answer within 2 ms, idle RSS within 4 MiB), each with the measured median
// and whether it is met.
void print_targets(std::ostream& out, const std::vector<RunResult>& runs);
bool write_csv(const std::string& path, const std::vector<RunResult>& runs);
bool write_svg(const std::string& path, const std::vector<RunResult>& runs);

}  // namespace storm
