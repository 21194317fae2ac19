// SPDX-License-Identifier: MIT
#include "agent/cli/cli.hpp"

int main(int argc, char** argv) { return ca::agent::main_cli(argc, argv); }
