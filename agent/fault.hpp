// SPDX-License-Identifier: MIT
// Test-only fault injection, every point in one place.  Each point reads its own
// CRYPT_AGENT_FAULT_* environment variable.  agent/fault.cpp is compiled only into the test
// build (CMake option CRYPT_AGENT_FAULT_INJECTION, which tests/build.sh turns on); in any other
// build each point is an inline no-op and the binary never names the variables
// (tests/build/fault_hooks.py checks both).
#pragma once

namespace ca::agent::fault {

#ifdef CRYPT_AGENT_FAULT_INJECTION
inline constexpr bool compiled_in = true;

// CRYPT_AGENT_FAULT_AFTER_STEP=k: abort() right after the k-th durable step of a LUKS run (a
// header or store write, a keyslot added or removed), so tests crash a rotation after each step
// in turn and prove every volume still opens afterwards.
void after_step(const char* step_name) noexcept;

// CRYPT_AGENT_FAULT_NO_KEYRING=1: behave as a kernel without keyrings (CONFIG_KEYS=n gives
// ENOSYS), to exercise the tmpfs fallback.
[[nodiscard]] bool no_keyring() noexcept;

// CRYPT_AGENT_FAULT_SIGKILL_AT_SEND=before:N or after:N: SIGKILL ourselves just before or just
// after the N-th reply's sendto, where a restart must neither lose nor repeat an answer.
void kill_at_send(bool after) noexcept;

// CRYPT_AGENT_FAULT_NO_LIBRARY=SONAME: that library counts as missing when it is loaded on first
// use (smartcard/dl.hpp), since a test cannot hide a system library from the loader
// (LD_LIBRARY_PATH only adds directories).
[[nodiscard]] bool no_library(const char* soname) noexcept;
#else
inline constexpr bool compiled_in = false;
inline void after_step(const char* /*step_name*/) noexcept {}
[[nodiscard]] inline bool no_keyring() noexcept { return false; }
inline void kill_at_send(bool /*after*/) noexcept {}
[[nodiscard]] inline bool no_library(const char* /*soname*/) noexcept { return false; }
#endif

}  // namespace ca::agent::fault
