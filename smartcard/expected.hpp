// SPDX-License-Identifier: MIT
// Errors as values for the smartcard layer.
//
// g++ 12 has no std::expected in C++20, so this is the small subset we need:
// a value or an Error, checked access, no exceptions on expected paths (a card
// pulled out, pcscd gone, a wrong PIN).  Error messages never contain secrets:
// they name the reader, the status word or the pcsc-lite code, nothing else.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace ca::smartcard {

enum class Errc {
    no_service,         // pcscd is not running (SCARD_E_NO_SERVICE) or went away
    no_reader,          // no reader, or the named reader vanished
    no_card,            // reader present, no card in it
    card_removed,       // card pulled during the operation
    card_reset,         // another client reset the card; volatile state (PIN) is lost
    card_busy,          // another client holds the card exclusively
    timeout,            // the watchdog abandoned an APDU the card never answered
    cancelled,          // shutdown, or the caller gave up
    card_status,        // the card answered with an unexpected status word
    pin_required,       // the command needs a verified PIN and none was given
    pin_wrong,          // VERIFY failed; tries_left in Error
    pin_blocked,        // no tries left: the card refuses every VERIFY
    pin_last_try,       // one try left: we refuse to spend it without a person typing
    not_deterministic,  // the same challenge gave two different responses
    bad_profile,        // the profile or seed cannot work (e.g. wrong challenge length)
    internal,           // a library call failed for a reason no admin can fix here
};

struct Error {
    Errc code = Errc::internal;
    std::string message;  // for an admin; never holds a PIN, response or key
    int tries_left = -1;  // for PIN errors, when known
};

[[nodiscard]] const char* to_string(Errc c) noexcept;

template <class T>
class Expected {
public:
    Expected(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
    Expected(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

    [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    [[nodiscard]] T& value() & {
        assert(has_value());
        return std::get<0>(v_);
    }
    [[nodiscard]] const T& value() const& {
        assert(has_value());
        return std::get<0>(v_);
    }
    [[nodiscard]] T&& value() && {
        assert(has_value());
        return std::get<0>(std::move(v_));
    }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    [[nodiscard]] const Error& error() const& {
        assert(!has_value());
        return std::get<1>(v_);
    }
    [[nodiscard]] Error&& error() && {
        assert(!has_value());
        return std::get<1>(std::move(v_));
    }

private:
    std::variant<T, Error> v_;
};

// For operations that return nothing but may fail.
struct Ok {};
using Status = Expected<Ok>;

inline Error make_error(Errc code, std::string message, int tries_left = -1) {
    return Error{code, std::move(message), tries_left};
}

}  // namespace ca::smartcard
