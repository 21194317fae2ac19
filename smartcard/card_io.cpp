// SPDX-License-Identifier: MIT
#include "smartcard/card_io.hpp"

#include <PCSC/pcsclite.h>

#include "smartcard/pcsc_dl.hpp"

#include <string>

namespace ca::smartcard {
namespace {

Errc errc_of(LONG rv) noexcept {
    switch (rv) {
    case SCARD_E_NO_SERVICE:
    case SCARD_E_SERVICE_STOPPED:
    case SCARD_F_COMM_ERROR:
    case SCARD_E_INVALID_HANDLE:  // our context died with the old pcscd
        return Errc::no_service;
    case SCARD_E_UNKNOWN_READER:
    case SCARD_E_READER_UNAVAILABLE:
    case SCARD_E_NO_READERS_AVAILABLE: return Errc::no_reader;
    case SCARD_E_NO_SMARTCARD: return Errc::no_card;
    case SCARD_W_REMOVED_CARD:
    case SCARD_E_NOT_TRANSACTED:  // what a card pulled mid-exchange looks like (LAB.md)
    case SCARD_W_UNRESPONSIVE_CARD:
    case SCARD_W_UNPOWERED_CARD: return Errc::card_removed;
    case SCARD_W_RESET_CARD: return Errc::card_reset;
    case SCARD_E_SHARING_VIOLATION: return Errc::card_busy;
    case SCARD_E_CANCELLED: return Errc::cancelled;
    default: return Errc::internal;
    }
}

Error status_error(std::string_view what, std::uint16_t sw, std::string_view reader) {
    return make_error(Errc::card_status,
                      std::string(what) + " answered SW " + sw_text(sw) + " (card in \"" + std::string(reader) + "\")");
}

// Response data without SW1 SW2, in locked memory; wipes the transport copy.
proto::Secret take_data(std::vector<unsigned char>& rapdu) {
    proto::Secret data = proto::Secret::copy_of(
        std::span<const unsigned char>(rapdu.data(), rapdu.size() >= 2 ? rapdu.size() - 2 : 0));
    proto::wipe(rapdu.data(), rapdu.size());
    return data;
}

Status select_application(CardConnection& c, const CardProfile& p, ApduCounters* counters) {
    if (p.aid.empty()) return Ok{};
    auto r = c.transmit(select_apdu(p), counters);
    if (!r) return std::move(r).error();
    const auto sw = status_word(*r);
    if (sw != kSwOk) return status_error("SELECT of the profile's application", sw, c.reader());
    return Ok{};
}

// Sends the PIN (wiping it and the APDU right after) or, without a PIN, asks
// for the PIN state.  Returns false when the card is ready for the challenge;
// true with `stop` set when the operation ends here.  (An out-parameter: g++ 12
// misreads an optional<variant> return as uninitialised under ASan.)
bool settle_pin(CardConnection& c, OperationRequest& req, ApduCounters* counters, bool& verified,
                OperationResult& stop) {
    if (!req.profile.pin_reference) return false;
    const bool have_pin = req.pin.has_value();
    Expected<std::vector<unsigned char>> r = std::vector<unsigned char>{};
    if (have_pin) {
        {
            proto::Secret apdu = verify_apdu(req.profile, *req.pin);
            req.pin.reset();     // Secret's destructor wipes the PIN
            if (apdu.empty()) {  // a PIN no VERIFY can carry: ask again, no try spent
                stop = NeedPin{-1, false, {}, false, false};
                return true;
            }
            if (counters) ++counters->verifies;
            r = c.transmit(apdu.bytes(), counters);
        }  // the APDU copy holding the PIN is wiped here
    } else {
        r = c.transmit(verify_status_apdu(req.profile), counters);
    }
    if (!r) {
        stop = std::move(r).error();
        return true;
    }
    const auto sw = status_word(*r);
    const PinState st = pin_state_from_sw(sw);
    switch (st.kind) {
    case PinState::verified: verified = have_pin; return false;
    case PinState::tries_left: stop = NeedPin{st.tries, have_pin, {}, false, false}; return true;
    case PinState::blocked:
        stop = make_error(Errc::pin_blocked,
                          "the card in \"" + c.reader() + "\" has blocked its PIN; unblock it with the card's PUK tool",
                          0);
        return true;
    case PinState::unknown: break;
    }
    // An unclear answer (6A88, 6D00...): the challenge decides, and its 6982 asks for the PIN.
    if (!have_pin) return false;
    stop = status_error("VERIFY", sw, c.reader());
    return true;
}

Expected<proto::Secret> one_challenge(CardConnection& c, const CardProfile& p, std::span<const unsigned char> seed,
                                      ApduCounters* counters) {
    auto r = c.transmit(challenge_apdu(p, seed), counters);
    if (!r) return std::move(r).error();
    const auto sw = status_word(*r);
    if (sw == 0x6982)  // security status not satisfied: the card wants a PIN first
        return make_error(Errc::pin_required, "the card in \"" + c.reader() + "\" needs a PIN first");
    if (sw != kSwOk) return status_error("the challenge command", sw, c.reader());
    if (r->size() <= 2) return make_error(Errc::card_status, "the card returned an empty response");
    if (counters) ++counters->challenges;
    return take_data(*r);
}

}  // namespace

Error pcsc_error(LONG rv, std::string_view what, std::string_view reader) {
    std::string msg = std::string(what) + ": " + pcsc::stringify_error(rv);
    if (!reader.empty()) msg += " (reader \"" + std::string(reader) + "\")";
    return make_error(errc_of(rv), std::move(msg));
}

Expected<CardConnection> CardConnection::open(const std::string& reader) {
    if (std::string why = pcsc::load("talking to a smartcard reader (card-profile)"); !why.empty())
        return make_error(Errc::no_service, std::move(why));
    SCARDCONTEXT ctx = 0;
    LONG rv = pcsc::establish_context(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &ctx);
    if (rv != SCARD_S_SUCCESS) return pcsc_error(rv, "connecting to pcscd", "");
    SCARDHANDLE card = 0;
    DWORD protocol = 0;
    rv = pcsc::connect(ctx, reader.c_str(), SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &card,
                       &protocol);
    if (rv != SCARD_S_SUCCESS) {
        pcsc::release_context(ctx);
        return pcsc_error(rv, "connecting to the card", reader);
    }
    return CardConnection(ctx, card, protocol, reader);
}

CardConnection::CardConnection(CardConnection&& o) noexcept
    : ctx_(o.ctx_), card_(o.card_), protocol_(o.protocol_), reader_(std::move(o.reader_)), open_(o.open_) {
    o.open_ = false;
}

CardConnection::~CardConnection() { close(false); }

void CardConnection::close(bool reset_card) noexcept {
    if (!open_) return;
    open_ = false;
    pcsc::disconnect(card_, reset_card ? SCARD_RESET_CARD : SCARD_LEAVE_CARD);
    pcsc::release_context(ctx_);
}

std::vector<unsigned char> CardConnection::atr() const {
    unsigned char atr[MAX_ATR_SIZE];
    DWORD atr_len = sizeof atr;
    DWORD state = 0, proto = 0;
    DWORD name_len = 0;
    if (pcsc::status(card_, nullptr, &name_len, &state, &proto, atr, &atr_len) != SCARD_S_SUCCESS) return {};
    return {atr, atr + atr_len};
}

Expected<std::vector<unsigned char>> CardConnection::transmit(std::span<const unsigned char> apdu,
                                                              ApduCounters* counters) {
    // What SCARD_PCI_T0/T1 point to, without their data symbols (libpcsclite is loaded by dlopen).
    SCARD_IO_REQUEST pci_request{};
    pci_request.dwProtocol = protocol_ == SCARD_PROTOCOL_T0 ? SCARD_PROTOCOL_T0 : SCARD_PROTOCOL_T1;
    pci_request.cbPciLength = sizeof(SCARD_IO_REQUEST);
    const SCARD_IO_REQUEST* pci = &pci_request;
    std::vector<unsigned char> out;
    std::vector<unsigned char> cmd(apdu.begin(), apdu.end());
    // Bounded: a card that keeps saying 61xx forever is broken, not chatty.
    for (int round = 0; round < 16; ++round) {
        unsigned char buf[MAX_BUFFER_SIZE_EXTENDED];
        DWORD len = sizeof buf;
        if (counters) ++counters->apdus;
        const LONG rv = pcsc::transmit(card_, pci, cmd.data(), static_cast<DWORD>(cmd.size()), nullptr, buf, &len);
        proto::wipe(cmd.data(), cmd.size());  // may have held a PIN
        if (rv != SCARD_S_SUCCESS) {
            proto::wipe(out.data(), out.size());
            return pcsc_error(rv, "sending a command to the card", reader_);
        }
        if (len < 2) {
            proto::wipe(buf, sizeof buf);
            // vpcd (and some USB readers) report a card pulled mid-command as a
            // "successful" empty response: treat it as the removal it is.
            return make_error(Errc::card_removed,
                              "the card in reader \"" + reader_ + "\" broke off a command (removed?)");
        }
        const unsigned char sw1 = buf[len - 2], sw2 = buf[len - 1];
        if (sw1 == 0x6C && round == 0) {  // wrong Le: resend with the length the card wants
            cmd.assign(apdu.begin(), apdu.end());
            cmd.back() = sw2;
            continue;
        }
        out.insert(out.end(), buf, buf + len - 2);
        proto::wipe(buf, sizeof buf);
        if (sw1 == 0x61) {  // more data waiting: GET RESPONSE
            cmd = {0x00, 0xC0, 0x00, 0x00, sw2};
            continue;
        }
        out.push_back(sw1);
        out.push_back(sw2);
        return out;
    }
    proto::wipe(out.data(), out.size());
    return make_error(Errc::card_status, "the card kept asking for GET RESPONSE");
}

OperationResult run_operation(OperationRequest req, ApduCounters* counters) {
    auto conn = CardConnection::open(req.reader);
    if (!conn) return std::move(conn).error();
    CardConnection& c = *conn;
    if (auto st = select_application(c, req.profile, counters); !st) return std::move(st).error();

    bool verified = false;
    OperationResult early = Responses{};
    if (settle_pin(c, req, counters, verified, early)) {
        c.close(false);
        return early;
    }
    Responses out;
    for (const auto& seed : req.seeds) {
        auto first = one_challenge(c, req.profile, seed, counters);
        if (!first) {
            c.close(verified);
            if (first.error().code == Errc::pin_required && req.profile.pin_reference && !verified)
                return NeedPin{-1, false, {}, false, false};
            return std::move(first).error();
        }
        if (req.check_determinism) {
            auto second = one_challenge(c, req.profile, seed, counters);
            if (!second) {
                c.close(verified);
                return std::move(second).error();
            }
            if (!first->equals(*second)) {
                c.close(verified);
                return make_error(Errc::not_deterministic,
                                  "the card in \"" + c.reader() +
                                      "\" answered the same challenge differently twice; this profile "
                                      "cannot make stable keys");
            }
        }
        out.responses.push_back(std::move(*first));
    }
    c.close(verified);
    return out;
}

Expected<std::vector<std::string>> list_readers() {
    if (std::string why = pcsc::load("listing smartcard readers"); !why.empty())
        return make_error(Errc::no_service, std::move(why));
    SCARDCONTEXT ctx = 0;
    LONG rv = pcsc::establish_context(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &ctx);
    if (rv != SCARD_S_SUCCESS) return pcsc_error(rv, "connecting to pcscd", "");
    DWORD len = 0;
    rv = pcsc::list_readers(ctx, nullptr, nullptr, &len);
    std::vector<std::string> names;
    if (rv == SCARD_S_SUCCESS && len > 0) {
        std::string buf(len, '\0');
        rv = pcsc::list_readers(ctx, nullptr, buf.data(), &len);
        for (std::size_t i = 0; rv == SCARD_S_SUCCESS && i < buf.size() && buf[i];) {
            names.emplace_back(buf.c_str() + i);
            i += names.back().size() + 1;
        }
    }
    pcsc::release_context(ctx);
    if (rv != SCARD_S_SUCCESS && rv != SCARD_E_NO_READERS_AVAILABLE) return pcsc_error(rv, "listing readers", "");
    return names;
}

ReaderStatus probe_reader(const std::string& reader, const CardProfile& profile, ApduCounters* counters) {
    ReaderStatus st;
    st.reader = reader;
    auto conn = CardConnection::open(reader);
    if (!conn) {
        if (conn.error().code != Errc::no_card) st.error = conn.error();
        return st;
    }
    st.card_present = true;
    st.atr = hex(conn->atr());
    if (profile.aid.empty()) {
        st.application = "no AID configured";
    } else if (auto sel = select_application(*conn, profile, counters); sel) {
        st.application = "selected";
    } else {
        st.application = "not found: " + sel.error().message;
        return st;
    }
    if (!profile.pin_reference) {
        st.pin = "not used by the profile";
        return st;
    }
    auto r = conn->transmit(verify_status_apdu(profile), counters);
    if (!r) {
        st.error = r.error();
        return st;
    }
    const PinState ps = pin_state_from_sw(status_word(*r));
    switch (ps.kind) {
    case PinState::verified: st.pin = "verified (by another session)"; break;
    case PinState::tries_left: st.pin = std::to_string(ps.tries) + (ps.tries == 1 ? " try left" : " tries left"); break;
    case PinState::blocked: st.pin = "blocked"; break;
    case PinState::unknown:
        st.pin = "unclear (VERIFY answered " + sw_describe(status_word(*r)) + "); the challenge will tell";
        break;
    }
    return st;
}

}  // namespace ca::smartcard
