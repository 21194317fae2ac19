// SPDX-License-Identifier: MIT
// Libraries that only some configurations use, loaded on first use.
//
// serve with a typed passphrase never touches a card, a PKCS#11 module or a LUKS header, yet
// linking libpcsclite, libcrypto and libcryptsetup (with libdevmapper, libblkid, libjson-c,
// libargon2 ...) made every start map and relocate them: most of its start-up time and idle
// memory.  As systemd does for libcryptsetup (src/shared/cryptsetup-util.c, dlopen_cryptsetup),
// each such library is a table of function pointers filled by dlopen + dlsym the first time a
// configuration needs it; a library or symbol that is missing then is an error naming the
// library, the symbol and what needed it, never a failure at start for everyone.
#pragma once

#include <mutex>
#include <span>
#include <string>

namespace ca::smartcard::dl {

// One function pointer to fill: its address and the symbol's name.
struct Symbol {
    void** slot;
    const char* name;
};

// Takes the address of a function pointer as the untyped slot dlsym fills (POSIX guarantees
// that a data pointer can hold a function's address).
template <class Fn>
Symbol symbol(Fn*& fp, const char* name) noexcept {
    return Symbol{reinterpret_cast<void**>(&fp), name};
}

// A library opened once, by soname, with all its symbols; thread-safe (the card thread and
// the loop may both be first).  The outcome is kept: a missing library is not retried.
class Library {
public:
    constexpr explicit Library(const char* soname) noexcept : soname_(soname) {}
    Library(const Library&) = delete;
    Library& operator=(const Library&) = delete;

    // Empty when loaded; otherwise "cannot load SONAME, needed for WHAT: REASON".
    [[nodiscard]] std::string load(std::span<const Symbol> symbols, const char* what);
    [[nodiscard]] const char* soname() const noexcept { return soname_; }

private:
    const char* soname_;
    std::once_flag once_;
    std::string failure_;  // why the one attempt failed; empty when it succeeded
};

}  // namespace ca::smartcard::dl
