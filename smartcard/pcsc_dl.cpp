// SPDX-License-Identifier: MIT
#include "smartcard/pcsc_dl.hpp"

#include "smartcard/dl.hpp"

#include <PCSC/pcsclite.h>

namespace ca::smartcard::pcsc {

decltype(&::SCardEstablishContext) establish_context = nullptr;
decltype(&::SCardReleaseContext) release_context = nullptr;
decltype(&::SCardListReaders) list_readers = nullptr;
decltype(&::SCardConnect) connect = nullptr;
decltype(&::SCardDisconnect) disconnect = nullptr;
decltype(&::SCardStatus) status = nullptr;
decltype(&::SCardTransmit) transmit = nullptr;
decltype(&::SCardGetStatusChange) get_status_change = nullptr;
decltype(&::SCardCancel) cancel = nullptr;
decltype(&::pcsc_stringify_error) stringify_error = nullptr;

std::string load(const char* what) {
    // The soname pcsc-lite has had since 1.6 (Debian 12 ships 1.9.9, Debian 13 2.3.3).
    static dl::Library lib("libpcsclite.so.1");
    static const dl::Symbol symbols[] = {
        dl::symbol(establish_context, "SCardEstablishContext"),
        dl::symbol(release_context, "SCardReleaseContext"),
        dl::symbol(list_readers, "SCardListReaders"),
        dl::symbol(connect, "SCardConnect"),
        dl::symbol(disconnect, "SCardDisconnect"),
        dl::symbol(status, "SCardStatus"),
        dl::symbol(transmit, "SCardTransmit"),
        dl::symbol(get_status_change, "SCardGetStatusChange"),
        dl::symbol(cancel, "SCardCancel"),
        dl::symbol(stringify_error, "pcsc_stringify_error"),
    };
    return lib.load(symbols, what);
}

}  // namespace ca::smartcard::pcsc
