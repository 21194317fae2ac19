// SPDX-License-Identifier: MIT
// Card responses for code that is not on an event loop (enrolment, rotation,
// `crypt-agent card derive`): runs a private io_context with a CardService
// until every seed is answered, something fails, or the wait runs out.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "smartcard/derive.hpp"
#include "smartcard/service.hpp"

namespace ca::smartcard {

// Makes the PIN prompt for the private loop (the agent passes its ask-password asker).
using PinPromptFactory = std::function<std::unique_ptr<PinPrompt>(boost::asio::io_context&)>;

struct BlockingOptions {
    CardOptions card;
    std::chrono::milliseconds wait_for_card{std::chrono::seconds(30)};
    PinPromptFactory pin;               // empty: a card that needs a PIN fails with pin_required
    CardService::NoticeHandler notice;  // empty: notices are dropped
};

// One response per seed, in order, after at most one card operation (one PIN
// prompt).  With check_determinism each challenge is sent twice and compared.
// Errors: timeout (no usable card within wait_for_card, or the watchdog),
// pin_* errors, not_deterministic, card_status, bad_profile.
[[nodiscard]] Expected<std::vector<proto::Secret>> responses_blocking(
    const BlockingOptions& options, const std::vector<std::vector<unsigned char>>& seeds, bool check_determinism);

// A ChallengeFn over responses_blocking, for the LUKS code.
[[nodiscard]] ChallengeFn make_challenge_fn(BlockingOptions options, bool check_determinism);

}  // namespace ca::smartcard
