// SPDX-License-Identifier: MIT
// libFuzzer target: the pure card-side parsers in smartcard/profile.hpp.
// The input is read four ways: as a response APDU (status word -> PIN state),
// as hex text (unhex), as a profile setting "key=value" that is then used to
// build the APDUs, and as a typed PIN for VERIFY.  The 61xx/6Cxx response
// handling lives inside CardConnection::transmit, tied to SCardTransmit, and
// is not reachable here.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "smartcard/profile.hpp"

namespace sc = ca::smartcard;

namespace {
void check_pin_state(std::span<const unsigned char> rapdu) {
    const std::uint16_t sw = sc::status_word(rapdu);
    const auto st = sc::pin_state_from_sw(sw);
    if (st.kind == sc::PinState::tries_left && (st.tries < 1 || st.tries > 15)) std::abort();
    if (sc::sw_text(sw).size() != 4) std::abort();
}

void check_unhex(std::string_view text) {
    auto bytes = sc::unhex(text);
    if (bytes && sc::unhex(sc::hex(*bytes)) != bytes) std::abort();
}

// An APDU is CLA INS P1 P2 Lc data [Le]: Lc must be the data's length.
void check_apdu(const sc::Apdu& a, std::size_t data, bool le) {
    if (a.size() != 5 + data + (le ? 1 : 0) || a[4] != data) std::abort();
}

// VERIFY carries the typed PIN: Lc must say how long it is, whatever was typed.
void check_verify(std::span<const unsigned char> typed) {
    const auto pin = ca::proto::Secret::copy_of(typed);
    const auto apdu = sc::verify_apdu(sc::CardProfile{}, pin);
    if (pin.empty() || pin.size() > 255) {  // no VERIFY can carry it: nothing to send
        if (!apdu.empty()) std::abort();
        return;
    }
    if (apdu.size() != 5 + pin.size() || apdu.data()[4] != pin.size()) {
        std::fprintf(stderr, "VERIFY for a %zu-byte PIN says Lc=%u\n", pin.size(), apdu.data()[4]);
        std::abort();
    }
}

void check_profile(std::string_view setting) {
    const auto eq = setting.find('=');
    if (eq == std::string_view::npos) return;
    sc::CardProfile p;
    if (!sc::set_profile_field(p, setting.substr(0, eq), setting.substr(eq + 1))) return;
    // SELECT with P2 00 asks for the FCI (Le 00); with 0C for nothing.
    check_apdu(sc::select_apdu(p), p.aid.size(), p.select_p2 != 0x0C);
    const std::vector<unsigned char> seed(p.challenge_length, 0x5a);
    if (!sc::check_seed(p, seed)) std::abort();
    check_apdu(sc::challenge_apdu(p, seed), seed.size(), true);
    if (sc::verify_status_apdu(p).size() != 4) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    check_pin_state(std::span<const unsigned char>(data, size));
    check_unhex(text);
    check_profile(text);
    check_verify(std::span<const unsigned char>(data, size));
    return 0;
}
