// SPDX-License-Identifier: MIT
#include "agent/cli/card_wait.hpp"

namespace ca::agent {

std::string card_wait_text(const smartcard::CardOptions& c) {
    if (c.pkcs11) return "the PKCS#11 token of card-uri " + c.pkcs11->uri;
    if (!c.reader_filter.empty()) return "a card in a reader matching \"" + c.reader_filter + "\"";
    return "a card in any reader";
}

void CardWait::notice(const smartcard::Notice& n) {
    // The service words it so (smartcard/service.cpp, on_monitor_event).
    static constexpr std::string_view kInserted = "card inserted in reader ";
    if (n.text.rfind(kInserted, 0) != 0) return;
    const auto end = n.text.find(" (ATR");
    found("found a card in reader " +
          n.text.substr(kInserted.size(), end == std::string::npos ? std::string::npos : end - kInserted.size()));
}

void WaitingPinPrompt::ask(const Request& req, Done done) {
    const std::string whose = req.token_label.empty() ? "the card in reader \"" + req.reader + "\""
                                                      : "token \"" + req.token_label + "\"";
    if (card_) card_->found("found " + whose);
    pin_ = std::make_unique<WaitLine>("the PIN of " + whose + " (asked through ask-password)",
                                      std::chrono::duration_cast<std::chrono::milliseconds>(timeout_));
    inner_->ask(req, [this, done = std::move(done)](smartcard::Expected<proto::Secret> pin) {
        if (pin_) pin_->end(pin ? std::string("PIN entered") : "no PIN: " + pin.error().message);
        done(std::move(pin));
    });
}

void WaitingPinPrompt::cancel() noexcept {
    inner_->cancel();
    pin_.reset();
}

}  // namespace ca::agent
