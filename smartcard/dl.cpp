// SPDX-License-Identifier: MIT
#include "smartcard/dl.hpp"

#include "agent/fault.hpp"

#include <dlfcn.h>

namespace ca::smartcard::dl {
namespace {

std::string open_all(const char* soname, std::span<const Symbol> symbols) {
    if (agent::fault::no_library(soname)) return "hidden by fault injection (test build)";
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
