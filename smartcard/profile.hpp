// SPDX-License-Identifier: MIT
// How a card answers a challenge: a card profile, and the APDUs it implies.
//
// Pure code (no PC/SC): building command APDUs and reading status words, so
// it can be unit-tested.  A profile is deliberately small: which application
// to SELECT (optional), which command turns a challenge into a deterministic
// response (ISO 7816-4 INTERNAL AUTHENTICATE by default), which PIN reference
// VERIFY uses, and how long the challenge is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/secret.hpp"
#include "smartcard/expected.hpp"

namespace ca::smartcard {

struct CardProfile {
    std::string name = "iso7816-internal-authenticate";
    // SELECT by DF name (00 A4 04 0C Lc AID) before anything else; empty: no SELECT.
    std::vector<unsigned char> aid;
    // SELECT's P2: 00 (return FCI) as scdaemon and OpenSC send to OpenPGP cards;
    // 0C (no response data) for cards that accept only that form (the lab's vicc).
    unsigned char select_p2 = 0x00;
    // The challenge command: CLA INS P1 P2, Lc = challenge length, Le = 00.
    // 00 88 06 00 is INTERNAL AUTHENTICATE with algorithm reference 06 and the
    // card's default key; the lab's iso7816 card answers with AES-128-CBC.
    unsigned char cla = 0x00, ins = 0x88, p1 = 0x06, p2 = 0x00;
    std::size_t challenge_length = 32;
    // VERIFY's P2 (ISO 7816-4: 80 = specific reference data, PIN 0).  nullopt
    // means the card needs no PIN and VERIFY is never sent.
    std::optional<unsigned char> pin_reference = 0x80;
};

// Sets one profile field from its configuration name, e.g. ("aid", "A000000...").
// Keys: name, aid, command (8 hex digits CLA INS P1 P2), challenge-length,
// pin-reference (2 hex digits or "none"), select-p2 (2 hex digits).  Returns bad_profile with the reason.
[[nodiscard]] Status set_profile_field(CardProfile& p, std::string_view key, std::string_view value);

// The seed must be exactly as long as the profile's challenge (and fit a short APDU).
[[nodiscard]] Status check_seed(const CardProfile& p, std::span<const unsigned char> seed);

using Apdu = std::vector<unsigned char>;

[[nodiscard]] Apdu select_apdu(const CardProfile& p);
[[nodiscard]] Apdu challenge_apdu(const CardProfile& p, std::span<const unsigned char> seed);
// VERIFY with no data: asks the card for the PIN state without spending a try.
[[nodiscard]] Apdu verify_status_apdu(const CardProfile& p);
// VERIFY with the PIN, built in locked memory because it holds the PIN.
// VERIFY with the PIN; empty (send nothing) for an empty PIN or one over 255 bytes.
[[nodiscard]] proto::Secret verify_apdu(const CardProfile& p, const proto::Secret& pin);

// Status word helpers (ISO 7816-4).
inline constexpr std::uint16_t kSwOk = 0x9000;
[[nodiscard]] inline std::uint16_t status_word(std::span<const unsigned char> rapdu) {
    if (rapdu.size() < 2) return 0;
    return static_cast<std::uint16_t>((rapdu[rapdu.size() - 2] << 8) | rapdu[rapdu.size() - 1]);
}

// What the card says about its PIN after an (empty or real) VERIFY, as ISO 7816-4
// defines the status words.  Nothing here means "no PIN needed": 9000 to an empty
// VERIFY is "verification not required" (none, or already done), and every other
// word (6A88 "referenced data not found", 6A86, 6B00, 6D00, 6982...) is unclear:
// the caller sends the challenge and reacts to 6982 by asking for the PIN.
struct PinState {
    enum Kind { verified, tries_left, blocked, unknown } kind = unknown;
    int tries = -1;  // for tries_left
};
[[nodiscard]] PinState pin_state_from_sw(std::uint16_t sw) noexcept;

[[nodiscard]] std::string hex(std::span<const unsigned char> bytes, bool upper = true);
[[nodiscard]] std::optional<std::vector<unsigned char>> unhex(std::string_view text);
[[nodiscard]] std::string sw_text(std::uint16_t sw);
// "6A88 (referenced data not found)": the word with its ISO 7816-4 meaning, when known.
[[nodiscard]] std::string sw_describe(std::uint16_t sw);

}  // namespace ca::smartcard
