// SPDX-License-Identifier: MIT
// The agent as an asker: a PIN question through systemd's ask-password
// protocol, so whichever agent the person sees (console, Plymouth, GUI)
// prompts for it.  We write our own ask file and listen on our own datagram
// socket in the ask directory, exactly as systemd-ask-password does.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/datagram_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "smartcard/service.hpp"

namespace ca::agent {

struct PinAskerOptions {
    std::filesystem::path ask_dir = "/run/systemd/ask-password";
    std::chrono::seconds timeout{180};  // NotAfter; then the question is withdrawn
    uid_t accept_uid = 0;               // replies from other users are dropped, as systemd does
};

// "crypt-agent:pin:<reader>" (the Id agents and tests match on).
[[nodiscard]] std::string pin_question_id(const std::string& reader);
// One line naming the card and the tries left; warns on the last try.
[[nodiscard]] std::string pin_question_message(const smartcard::PinPrompt::Request& req);

class PinAsker final : public smartcard::PinPrompt {
public:
    PinAsker(boost::asio::io_context& io, PinAskerOptions options);
    ~PinAsker() override;
    PinAsker(const PinAsker&) = delete;
    PinAsker& operator=(const PinAsker&) = delete;

    // One question at a time; a new ask() withdraws the previous one (its
    // `done` gets Errc::cancelled).  `done` runs on the loop.
    void ask(const Request& req, Done done) override;
    // Any question of ours (e.g. a volume's existing passphrase at enrolment): the same
    // protocol, Id and message as given (made one line), no echo.
    void ask_text(const std::string& id, const std::string& message, const std::string& icon, Done done);
    // Withdraws the question without calling `done`.
    void cancel() noexcept override;

private:
    struct OwnAsk;
    void wait_reply(const std::shared_ptr<OwnAsk>& q);
    void on_readable(const std::shared_ptr<OwnAsk>& q);
    void finish(const std::shared_ptr<OwnAsk>& q, smartcard::Expected<proto::Secret> result);

    boost::asio::io_context& io_;
    PinAskerOptions options_;
    std::shared_ptr<OwnAsk> current_;
};

// Ready-made factory for smartcard::BlockingOptions::pin.
[[nodiscard]] std::function<std::unique_ptr<smartcard::PinPrompt>(boost::asio::io_context&)> pin_asker_factory(
    const PinAskerOptions& options);

}  // namespace ca::agent
