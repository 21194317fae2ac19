// SPDX-License-Identifier: MIT
#include "smartcard/expected.hpp"

namespace ca::smartcard {

const char* to_string(Errc c) noexcept {
    switch (c) {
    case Errc::no_service: return "no PC/SC service";
    case Errc::no_reader: return "no reader";
    case Errc::no_card: return "no card";
    case Errc::card_removed: return "card removed";
    case Errc::card_reset: return "card reset";
    case Errc::card_busy: return "card in use by another program";
    case Errc::timeout: return "card did not answer in time";
    case Errc::cancelled: return "cancelled";
    case Errc::card_status: return "card refused the command";
    case Errc::pin_required: return "PIN required";
    case Errc::pin_wrong: return "wrong PIN";
    case Errc::pin_blocked: return "PIN blocked";
    case Errc::pin_last_try: return "one PIN try left";
    case Errc::not_deterministic: return "card response is not deterministic";
    case Errc::bad_profile: return "card profile does not fit";
    case Errc::internal: return "internal error";
    }
    return "unknown error";
}

}  // namespace ca::smartcard
