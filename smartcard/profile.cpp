// SPDX-License-Identifier: MIT
#include "smartcard/profile.hpp"

#include "proto/hex.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace ca::smartcard {
namespace {

Error profile_error(std::string_view key, std::string_view why) {
    return make_error(Errc::bad_profile, "card profile: " + std::string(key) + ": " + std::string(why));
}

// A short case 3 or case 4 APDU.  (Built by resize + copy: g++ 12 warns
// falsely about insert() after an initializer list.)
Apdu command(unsigned char cla, unsigned char ins, unsigned char p1, unsigned char p2,
             std::span<const unsigned char> data, bool with_le) {
    Apdu a(5 + data.size() + (with_le ? 1 : 0), 0);
    a[0] = cla;
    a[1] = ins;
    a[2] = p1;
    a[3] = p2;
    a[4] = static_cast<unsigned char>(data.size());
    std::copy(data.begin(), data.end(), a.begin() + 5);
    return a;
}

}  // namespace

std::string hex(std::span<const unsigned char> bytes, bool upper) { return proto::to_hex(bytes, upper); }

// "3B 8F 80" and "3b:8f" both read naturally.
std::optional<std::vector<unsigned char>> unhex(std::string_view text) { return proto::from_hex(text, true); }

std::string sw_text(std::uint16_t sw) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04X", static_cast<unsigned>(sw));
    return buf;
}

Status set_profile_field(CardProfile& p, std::string_view key, std::string_view value) {
    if (key == "name") {
        p.name = std::string(value);
    } else if (key == "aid") {
        auto aid = unhex(value);
        if (!aid || aid->size() > 16) return profile_error(key, "expected up to 16 bytes in hex");
        p.aid = std::move(*aid);
    } else if (key == "command") {
        auto cmd = unhex(value);
        if (!cmd || cmd->size() != 4) return profile_error(key, "expected CLA INS P1 P2 as 8 hex digits");
        p.cla = (*cmd)[0];
        p.ins = (*cmd)[1];
        p.p1 = (*cmd)[2];
        p.p2 = (*cmd)[3];
    } else if (key == "challenge-length") {
        std::size_t n = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc{} || end != value.data() + value.size() || n == 0 || n > 255)
            return profile_error(key, "expected a number from 1 to 255");
        p.challenge_length = n;
    } else if (key == "select-p2") {
        auto p2 = unhex(value);
        if (!p2 || p2->size() != 1) return profile_error(key, "expected 2 hex digits (00 or 0C)");
        p.select_p2 = (*p2)[0];
    } else if (key == "pin-reference") {
        if (value == "none") {
            p.pin_reference.reset();
            return Ok{};
        }
        auto ref = unhex(value);
        if (!ref || ref->size() != 1) return profile_error(key, "expected 2 hex digits or \"none\"");
        p.pin_reference = (*ref)[0];
    } else {
        return profile_error(key, "unknown setting");
    }
    return Ok{};
}

Status check_seed(const CardProfile& p, std::span<const unsigned char> seed) {
    if (seed.size() != p.challenge_length)
        return make_error(Errc::bad_profile, "seed is " + std::to_string(seed.size()) + " bytes, the card profile \"" +
                                                 p.name + "\" expects " + std::to_string(p.challenge_length));
    return Ok{};
}

Apdu select_apdu(const CardProfile& p) {
    // P2 00 asks for the FCI (OpenPGP cards, as scdaemon sends it); 0C for none.
    // With 00 a case 4 APDU (Le 00), as the card will answer with data.
    return command(0x00, 0xA4, 0x04, p.select_p2, p.aid, p.select_p2 != 0x0C);
}

Apdu challenge_apdu(const CardProfile& p, std::span<const unsigned char> seed) {
    // Le 00: whatever the card returns (up to 256 bytes).
    return command(p.cla, p.ins, p.p1, p.p2, seed, true);
}

Apdu verify_status_apdu(const CardProfile& p) { return Apdu{0x00, 0x20, 0x00, p.pin_reference.value_or(0x80)}; }

proto::Secret verify_apdu(const CardProfile& p, const proto::Secret& pin) {
    // Lc is one byte: a longer PIN would be sent truncated (Lc = length mod 256) and
    // could spend a try on its first bytes.  Refuse it: an empty APDU, nothing to send.
    if (pin.empty() || pin.size() > 255) return {};
    proto::Secret a(5 + pin.size());
    unsigned char* d = a.data();
    d[0] = 0x00;
    d[1] = 0x20;
    d[2] = 0x00;
    d[3] = p.pin_reference.value_or(0x80);
    d[4] = static_cast<unsigned char>(pin.size());
    for (std::size_t i = 0; i < pin.size(); ++i) d[5 + i] = pin.data()[i];
    return a;
}

PinState pin_state_from_sw(std::uint16_t sw) noexcept {
    if (sw == kSwOk) return {PinState::verified, -1};
    if ((sw & 0xFFF0) == 0x63C0) {
        const int n = sw & 0x0F;
        return n == 0 ? PinState{PinState::blocked, 0} : PinState{PinState::tries_left, n};
    }
    // 6983: authentication method blocked.  Anything else says nothing certain about
    // whether a PIN is needed: 6A88 is "referenced data not found" for this P2, which a
    // CAC card answers although its applet wants a PIN (under another reference or after
    // SELECT); 6D00/6A86/6B00 may only mean the empty VERIFY form is not supported.
    if (sw == 0x6983) return {PinState::blocked, 0};
    return {PinState::unknown, -1};
}

std::string sw_describe(std::uint16_t sw) {
    const char* meaning = nullptr;
    switch (sw) {
    case 0x9000: meaning = "normal processing"; break;
    case 0x6700: meaning = "wrong length"; break;
    case 0x6982: meaning = "security status not satisfied"; break;
    case 0x6983: meaning = "authentication method blocked"; break;
    case 0x6984: meaning = "reference data not usable"; break;
    case 0x6985: meaning = "conditions of use not satisfied"; break;
    case 0x6A81: meaning = "function not supported"; break;
    case 0x6A82: meaning = "file or application not found"; break;
    case 0x6A86: meaning = "incorrect parameters P1-P2"; break;
    case 0x6A88: meaning = "referenced data not found"; break;
    case 0x6B00: meaning = "wrong parameters P1-P2"; break;
    case 0x6D00: meaning = "instruction not supported"; break;
    case 0x6E00: meaning = "class not supported"; break;
    case 0x6F00: meaning = "no precise diagnosis"; break;
    default:
        if ((sw & 0xFFF0) == 0x63C0) meaning = "verification failed, counter in the last digit";
        break;
    }
    return meaning ? sw_text(sw) + " (" + meaning + ")" : sw_text(sw);
}

}  // namespace ca::smartcard
