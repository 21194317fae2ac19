// SPDX-License-Identifier: MIT
// Test-only fault injection: abort() right after the k-th durable step of a run.
//
// Compiled in only when the build sets CRYPT_AGENT_FAULT_INJECTION; a release
// build compiles fault_point() to nothing and never reads the environment.
// Tests set CRYPT_AGENT_FAULT_AFTER_STEP=k to crash a rotation after each step
// in turn and prove every volume still opens afterwards.
#pragma once

namespace ca::agent::luks {

// Marks one durable step (a header or store write, a keyslot added or removed).
void fault_point(const char* step_name) noexcept;

}  // namespace ca::agent::luks
