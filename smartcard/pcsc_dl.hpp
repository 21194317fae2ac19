// SPDX-License-Identifier: MIT
// pcsc-lite's client library, loaded on first use (see smartcard/dl.hpp): only a configuration
// with a card (card-profile, or a PKCS#11 key's reader events) needs it.
#pragma once

#include <PCSC/winscard.h>

#include <string>

namespace ca::smartcard::pcsc {

// Loads libpcsclite once; empty when loaded, else why not, naming the library and `what`.
[[nodiscard]] std::string load(const char* what);

// The functions we call, filled by load(): call them only after it succeeded.
extern decltype(&::SCardEstablishContext) establish_context;
extern decltype(&::SCardReleaseContext) release_context;
extern decltype(&::SCardListReaders) list_readers;
extern decltype(&::SCardConnect) connect;
extern decltype(&::SCardDisconnect) disconnect;
extern decltype(&::SCardStatus) status;
extern decltype(&::SCardTransmit) transmit;
extern decltype(&::SCardGetStatusChange) get_status_change;
extern decltype(&::SCardCancel) cancel;
extern decltype(&::pcsc_stringify_error) stringify_error;

}  // namespace ca::smartcard::pcsc
