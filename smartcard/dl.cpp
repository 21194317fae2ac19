// SPDX-License-Identifier: MIT
#include "smartcard/dl.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

namespace ca::smartcard::dl {
namespace {

#ifdef CRYPT_AGENT_FAULT_INJECTION
// Test-only: CRYPT_AGENT_FAULT_NO_LIBRARY=SONAME makes that library count as missing, since a
// test cannot hide a system library from the loader (LD_LIBRARY_PATH only adds directories).
bool hidden_by_test(const char* soname) noexcept {
    const char* hide = std::getenv("CRYPT_AGENT_FAULT_NO_LIBRARY");
    return hide && std::strcmp(hide, soname) == 0;
}
#else
constexpr bool hidden_by_test(const char*) noexcept { return false; }
#endif

std::string open_all(const char* soname, std::span<const Symbol> symbols) {
    if (hidden_by_test(soname)) return "hidden by CRYPT_AGENT_FAULT_NO_LIBRARY (test build)";
    // RTLD_NODELETE: the pointers stay valid for the life of the process, and the library is
    // never unloaded under a thread that is still inside it.
    void* handle = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!handle) {
        const char* why = ::dlerror();
        return why ? why : "dlopen failed";
    }
    for (const Symbol& s : symbols) {
        void* p = ::dlsym(handle, s.name);
        if (!p) {
            ::dlclose(handle);
            for (const Symbol& t : symbols) *t.slot = nullptr;
            return std::string("it has no symbol ") + s.name;
        }
        *s.slot = p;
    }
    return {};
}

}  // namespace

std::string Library::load(std::span<const Symbol> symbols, const char* what) {
    std::call_once(once_, [&] { failure_ = open_all(soname_, symbols); });
    if (failure_.empty()) return {};
    return std::string("cannot load ") + soname_ + ", needed for " + what + ": " + failure_;
}

}  // namespace ca::smartcard::dl
