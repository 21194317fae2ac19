// SPDX-License-Identifier: MIT
// One card operation, as blocking PC/SC calls.
//
// Everything here blocks (SCardTransmit has no timeout: a card that stops
// answering blocks it forever), so the service runs it on a thread of its own
// and guards it with a watchdog in the event loop.  Each operation opens its
// own PC/SC context: after pcscd restarts, an old context is dead, and an
// abandoned operation may still hold its context in a blocked call.
#pragma once

#include <PCSC/winscard.h>

#include <atomic>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proto/secret.hpp"
#include "smartcard/expected.hpp"
#include "smartcard/profile.hpp"

namespace ca::smartcard {

// Maps a pcsc-lite return code to an Errc; `what` names the call for the message.
[[nodiscard]] Error pcsc_error(LONG rv, std::string_view what, std::string_view reader);

// Counts what reaches the card, for tests and the "one operation per seed" promise.
struct ApduCounters {
    std::atomic<unsigned> apdus{0};       // every command APDU transmitted
    std::atomic<unsigned> challenges{0};  // challenge commands the card answered with 9000
    std::atomic<unsigned> verifies{0};    // VERIFY with a PIN (each may spend a try)
};

// A connected card with its own context; closes both on destruction.
class CardConnection {
public:
    [[nodiscard]] static Expected<CardConnection> open(const std::string& reader);
    CardConnection(CardConnection&& o) noexcept;
    CardConnection& operator=(CardConnection&&) = delete;
    CardConnection(const CardConnection&) = delete;
    ~CardConnection();

    // Sends one command APDU; returns the response including SW1 SW2.
    // Follows 61xx (GET RESPONSE) and 6Cxx (wrong Le) as T=0 cards need.
    [[nodiscard]] Expected<std::vector<unsigned char>> transmit(std::span<const unsigned char> apdu,
                                                                ApduCounters* counters);
    // SCARD_RESET_CARD drops the card's security state (a verified PIN), so a
    // later client cannot use the card on our PIN.
    void close(bool reset_card) noexcept;
    [[nodiscard]] const std::string& reader() const noexcept { return reader_; }
    [[nodiscard]] std::vector<unsigned char> atr() const;

private:
    CardConnection(SCARDCONTEXT ctx, SCARDHANDLE card, DWORD protocol, std::string reader)
        : ctx_(ctx), card_(card), protocol_(protocol), reader_(std::move(reader)) {}
    SCARDCONTEXT ctx_ = 0;
    SCARDHANDLE card_ = 0;
    DWORD protocol_ = 0;
    std::string reader_;
    bool open_ = true;
};

// What one operation is asked to do.
struct OperationRequest {
    std::string reader;
    CardProfile profile;
    std::vector<std::vector<unsigned char>> seeds;
    std::optional<proto::Secret> pin;  // wiped right after VERIFY
    bool check_determinism = false;    // ask each challenge twice and compare
    bool pin_pad_login = false;        // PKCS#11: C_Login with a NULL PIN (the reader asks)
};

// The card wants a PIN (first time: from an empty VERIFY; after a wrong PIN: from 63Cx).
struct NeedPin {
    int tries_left = -1;  // -1: the card did not say
    bool after_wrong_pin = false;
    std::string token_label;  // PKCS#11: the token's label, for the prompt
    bool count_low = false;   // PKCS#11: CKF_USER_PIN_COUNT_LOW
    bool pin_pad = false;     // PKCS#11: log in on the reader, ask nothing
};

struct Responses {
    std::vector<proto::Secret> responses;  // one per seed, in order
};

using OperationResult = std::variant<Responses, NeedPin, Error>;

// Runs the whole exchange: SELECT (if the profile has an AID), PIN state or
// VERIFY, one challenge per seed.  Never spends a PIN try unless a PIN is given.
[[nodiscard]] OperationResult run_operation(OperationRequest req, ApduCounters* counters);

// What `card status` shows for one reader, without spending a PIN try.
struct ReaderStatus {
    std::string reader;
    bool card_present = false;
    std::string atr;          // hex
    std::string application;  // "selected", "not found (SW)", "no AID configured"
    std::string pin;          // "not needed", "3 tries left", "verified", "blocked", ...
    std::optional<Error> error;
};

// Lists readers; `Errc::no_service` if pcscd is not there.
[[nodiscard]] Expected<std::vector<std::string>> list_readers();
[[nodiscard]] ReaderStatus probe_reader(const std::string& reader, const CardProfile& profile, ApduCounters* counters);

}  // namespace ca::smartcard
