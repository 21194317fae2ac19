// SPDX-License-Identifier: MIT
// The waits of a card operation outside the agent's loop (enroll, rotate, card derive,
// card list --login), said with agent/cli/wait_line.hpp: first for a card (until one is seen:
// its insertion, a PIN question, or the answer), then for its PIN.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "agent/cli/wait_line.hpp"
#include "smartcard/service.hpp"

namespace ca::agent {

// What the wait is for: "a card in any reader", "a card in a reader matching ...", "the
// PKCS#11 token of card-uri ...".
[[nodiscard]] std::string card_wait_text(const smartcard::CardOptions& c);

// The card wait of one card operation.
struct CardWait {
    CardWait(std::string what, std::chrono::milliseconds limit) : line(std::move(what), limit) {}
    WaitLine line;
    bool card_seen = false;
    // A card is there: the wait ends with `outcome`.
    void found(const std::string& outcome) {
        card_seen = true;
        line.end(outcome);
    }
    // Feed it the service's notices: "card inserted in reader ..." ends the wait.
    void notice(const smartcard::Notice& n);
};

// A PIN prompt (the agent's ask-password asker) whose question is a wait of its own; asking
// ends the card wait.
class WaitingPinPrompt final : public smartcard::PinPrompt {
public:
    WaitingPinPrompt(std::unique_ptr<smartcard::PinPrompt> inner, std::shared_ptr<CardWait> card,
                     std::chrono::seconds timeout)
        : inner_(std::move(inner)), card_(std::move(card)), timeout_(timeout) {}
    void ask(const Request& req, Done done) override;
    void cancel() noexcept override;

private:
    std::unique_ptr<smartcard::PinPrompt> inner_;
    std::shared_ptr<CardWait> card_;  // may be empty: no card wait before this PIN
    std::chrono::seconds timeout_;
    std::unique_ptr<WaitLine> pin_;
};

}  // namespace ca::agent
