// SPDX-License-Identifier: MIT
// `card derive` and `card watch`: they operate the card (through CardService).
#include "agent/cli/card_cmd.hpp"

#include "agent/cli/card_cli.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/cli/card_wait.hpp"
#include "agent/cli/json.hpp"
#include "agent/cli/wait_line.hpp"
#include "agent/config/options.hpp"
#include "agent/log.hpp"
#include "agent/sources/pin_asker.hpp"
#include "smartcard/derive.hpp"
#include "smartcard/pkcs11.hpp"
#include "smartcard/pkcs11_uri.hpp"
#include "smartcard/profile.hpp"
#include "smartcard/service.hpp"

namespace ca::agent::card_cmd {

namespace {

// A seed file holds raw bytes, or the same bytes as hex text (with an optional newline).
// PKCS#11 seeds have no fixed length (an EC key's is a point): any hex text is read as hex.
sc::Expected<std::vector<unsigned char>> read_seed(const std::string& path, std::size_t length, bool any_hex = false) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return sc::make_error(sc::Errc::bad_profile, "cannot read the seed file " + path);
    std::vector<unsigned char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string text(raw.begin(), raw.end());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (any_hex && !text.empty() && text.size() % 2 == 0)
        if (auto decoded = sc::unhex(text); decoded && decoded->size() * 2 == text.size()) return *decoded;
    if (text.size() == 2 * length)
        if (auto decoded = sc::unhex(text); decoded && decoded->size() == length) return *decoded;
    return raw;
}

}  // namespace

int run_derive(const CardCommandOptions& o, const CardCliEnv& env, const Log& log) {
    auto seed = read_seed(o.seed_file, o.card.profile.challenge_length, o.card.pkcs11.has_value());
    if (!seed) {
        log(3, seed.error().message);
        return 1;
    }

    boost::asio::io_context io;
    auto wait = std::make_shared<CardWait>(card_wait_text(o.card), o.wait);
    WaitingPinPrompt asker(std::make_unique<PinAsker>(io, PinAskerOptions{env.ask_dir, o.pin_timeout, 0}), wait,
                           o.pin_timeout);
    auto service = sc::CardService::create(io.get_executor(), o.card, &asker, [&log, wait](const sc::Notice& n) {
        wait->notice(n);
        log.notice(n);
    });
    int rc = 1;
    boost::asio::steady_timer deadline(io);
    boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
    boost::asio::signal_set status_signal(io, SIGUSR1);
    bool finished = false;
    auto finish = [&](int code) {
        if (finished) return;  // the first reason to stop is the exit code
        finished = true;
        rc = code;
        deadline.cancel();
        stop_signals.cancel();
        status_signal.cancel();
        service->stop();
    };
    stop_signals.async_wait([&](boost::system::error_code ec, int sig) {
        if (ec) return;
        log(5, std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT"));
        finish(128 + sig);
    });
    // SIGUSR1 logs the state: shows that the loop answers while a card operation hangs.
    std::function<void()> arm_status = [&] {
        status_signal.async_wait([&](boost::system::error_code ec, int) {
            if (ec) return;
            std::string s = "status: pcscd " + std::string(service->service_up() ? "up" : "down");
            for (const auto& r : service->readers())
                s += "; reader \"" + r.name + "\" " + (r.card_present ? "card present" : "empty") +
                     (r.frozen ? " (not answering)" : "");
            s += "; " + std::to_string(service->operations_started()) + " card operations";
            log(6, s);
            arm_status();
        });
    };
    arm_status();
    deadline.expires_after(o.wait);
    deadline.async_wait([&](boost::system::error_code ec) {
        if (ec) return;
        if (!wait->card_seen) wait->line.end("stopped waiting for " + card_wait_text(o.card));
        log(3, "no usable card answered within " +
                   std::to_string(std::chrono::duration_cast<std::chrono::seconds>(o.wait).count()) +
                   " s (card-wait); insert the card or check the reader");
        finish(1);
    });
    service->start();
    service->request_response(*seed, o.check_determinism, [&](sc::Expected<proto::Secret> r) {
        if (r) wait->found("the card answered");
        else if (!wait->card_seen)
            wait->line.end("stopped waiting for " + card_wait_text(o.card) + ": " + r.error().message);
        if (!r) {
            log(3, "cannot get a response from the card: " + r.error().message);
            finish(1);
            return;
        }
        for (const auto& uuid : o.uuids) {
            const proto::Secret pass = sc::derive_volume_key(*r, *seed, uuid);
            // The passphrase is this command's product: stdout only, never the log.
            std::cout.write(pass.chars(), static_cast<std::streamsize>(pass.size()));
            std::cout << '\n';
        }
        std::cout.flush();
        log(6, "derived " + std::to_string(o.uuids.size()) + " passphrase(s) after " +
                   std::to_string(service->operations_started()) + " card session(s), " +
                   std::to_string(service->counters().challenges.load()) + " challenge(s), " +
                   std::to_string(service->counters().apdus.load()) + " APDU(s)");
        finish(0);
    });
    io.run();
    return rc;
}

int run_watch(const CardCommandOptions& o, const Log& log) {
    boost::asio::io_context io;
    auto service = sc::CardService::create(io.get_executor(), o.card, nullptr,
                                           [&log](const sc::Notice& n) { log.notice(n); });
    int rc = 0;
    boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
    stop_signals.async_wait([&](boost::system::error_code ec, int sig) {
        if (ec) return;
        rc = 128 + sig;
        service->stop();
    });
    service->start();
    log(6, "watching readers; stop with SIGTERM");
    io.run();
    return rc;
}

}  // namespace ca::agent::card_cmd
