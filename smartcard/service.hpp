// SPDX-License-Identifier: MIT
// The card as the agent's event loop sees it: responses for seeds, delivered
// as completions in the loop, with hot-plug, recovery, watchdog and PIN rules.
//
//   * Requests for seeds wait until a card is in a matching reader; insertion
//     answers them all with one card operation (one VERIFY, one challenge
//     per seed).  A response is remembered for the life of the service, so a
//     seed costs one challenge however many volumes use it.
//   * A card pulled, reset, busy, or pcscd restarting: the operation is
//     retried (kMaxQuickRetries times quickly, then every 5 s, and at once
//     when a card is inserted).
//   * A card that does not answer within `watchdog` is abandoned: its thread
//     is left blocked in SCardTransmit, the reader is marked frozen until its
//     card is removed, and the loop carries on.
//   * PIN: read the tries left without spending one; ask a person through
//     PinPrompt; never send a PIN when one try is left (unless the options
//     allow the person to spend the last one); stop when the card is blocked.
//     The PIN is wiped right after VERIFY and never kept.
//
// Everything public runs on the loop's thread.  stop() before the io_context
// is destroyed.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "proto/secret.hpp"
#include "smartcard/card_io.hpp"
#include "smartcard/card_operation.hpp"
#include "smartcard/expected.hpp"
#include "smartcard/loop_gate.hpp"
#include "smartcard/monitor.hpp"
#include "smartcard/pkcs11.hpp"
#include "smartcard/profile.hpp"

namespace ca::smartcard {

struct CardOptions {
    CardProfile profile;
    std::string reader_filter;  // substring of the reader's name; empty: any reader
    std::chrono::milliseconds watchdog{5000};
    // With one PIN try left the agent never sends a PIN on its own.  When this
    // is true a person is still asked (with a warning that a wrong PIN blocks
    // the card); when false (default) the card is left alone.
    bool allow_last_pin_try = false;
    // Set (card-uri or card-module): the PKCS#11 backend answers instead of
    // the APDU profile; its module is loaded on the service's card thread.
    std::optional<Pkcs11Options> pkcs11;
    // card-pin-pad, kept apart so that setting it does not choose the backend.
    Pkcs11Options::PinPad pin_pad = Pkcs11Options::PinPad::automatic;
};

// A fresh seed for this card: the APDU profile's challenge length in random
// bytes; for PKCS#11, a new point on the same curve when `like` is an EC
// point (an EC key's seed), else 32 random bytes.  Throws only when the
// system's random source fails.
[[nodiscard]] std::vector<unsigned char> fresh_seed(const CardOptions& options, std::span<const unsigned char> like);

// Asks a person for a PIN (the agent implements it over ask-password).
class PinPrompt {
public:
    struct Request {
        std::string reader;
        std::string atr_hex;
        int tries_left = -1;  // -1: the card did not say
        bool after_wrong_pin = false;
        bool last_try = false;
        std::string token_label;  // PKCS#11 token (then `reader` names it too)
        bool count_low = false;   // PKCS#11: CKF_USER_PIN_COUNT_LOW
    };
    using Done = std::function<void(Expected<proto::Secret>)>;
    virtual ~PinPrompt() = default;
    // Calls `done` on the loop exactly once, unless cancel() came first.
    virtual void ask(const Request& req, Done done) = 0;
    virtual void cancel() noexcept = 0;
};

// Things worth a log line, for the agent to log (this library does not log).
struct Notice {
    enum Kind { info, warning, error } severity = info;
    std::string text;  // names readers, status words and counts, never secrets
};

class CardService : public std::enable_shared_from_this<CardService> {
public:
    using ResponseHandler = std::function<void(Expected<proto::Secret>)>;
    using NoticeHandler = std::function<void(const Notice&)>;

    [[nodiscard]] static std::shared_ptr<CardService> create(boost::asio::any_io_executor ex, CardOptions options,
                                                             PinPrompt* pin, NoticeHandler notice);
    ~CardService();

    void start();
    // Cancels the monitor, abandons an operation in flight, cancels a PIN
    // prompt, and fails every waiting request with Errc::cancelled.
    void stop();

    // The card's response to `seed`; the handler runs later on the loop.
    // Fails at once with bad_profile for a seed of the wrong length.
    void request_response(std::vector<unsigned char> seed, bool check_determinism, ResponseHandler handler);
    // Several seeds queued together, so that one card operation (one VERIFY,
    // one PIN prompt) answers them all even when a card is already present.
    void request_responses(std::vector<std::pair<std::vector<unsigned char>, ResponseHandler>> requests);

    // Drops remembered responses (wiped) and fails nothing.
    void forget_responses() noexcept;

    struct ReaderView {
        std::string name;
        bool card_present = false;
        bool frozen = false;
        std::string atr_hex;
    };
    [[nodiscard]] std::vector<ReaderView> readers() const;
    [[nodiscard]] bool service_up() const noexcept { return service_up_; }
    [[nodiscard]] const ApduCounters& counters() const noexcept { return *counters_; }
    [[nodiscard]] unsigned operations_started() const noexcept { return operations_; }

    static constexpr int kMaxQuickRetries = 5;
    // The name PKCS#11 operations use where the APDU backend names a reader:
    // a module hides readers behind tokens.
    static constexpr const char* kPkcs11Reader = "PKCS#11";

private:
    struct Private {};

public:
    CardService(Private, boost::asio::any_io_executor ex, CardOptions options, PinPrompt* pin, NoticeHandler notice);

private:
    struct Pending {
        std::vector<unsigned char> seed;
        bool check_determinism = false;
        std::vector<ResponseHandler> handlers;
    };
    struct ReaderState {
        bool present = false;
        bool frozen = false;       // watchdog fired; cleared when the card is removed
        bool pin_refused = false;  // last try / blocked: leave this card alone until reinserted
        std::vector<unsigned char> atr;
    };
    struct Operation;

    void on_monitor_event(MonitorEvent ev);
    void enqueue(std::vector<unsigned char> seed, bool check_determinism, ResponseHandler handler);
    void try_start();
    std::optional<std::string> pick_reader() const;
    void launch(const std::string& reader, std::optional<proto::Secret> pin, bool pin_pad = false);
    void on_operation_done(const std::shared_ptr<Operation>& op, OperationResult result);
    void on_watchdog(const std::shared_ptr<Operation>& op);
    void on_need_pin(const std::string& reader, const NeedPin& need);
    void on_pin_entered(const std::string& reader, Expected<proto::Secret> pin);
    void on_retryable(const Error& e);
    void complete(const std::string& key, const proto::Secret& response);
    void fail(const std::string& key, const Error& e);
    void fail_all(const Error& e);
    void schedule_retry(std::chrono::milliseconds delay);
    void notify(Notice::Kind k, std::string text);

    boost::asio::any_io_executor ex_;
    CardOptions options_;
    PinPrompt* pin_;
    NoticeHandler notice_;
    std::shared_ptr<LoopGate> gate_;
    std::unique_ptr<Monitor> monitor_;
    std::shared_ptr<ApduCounters> counters_ = std::make_shared<ApduCounters>();
    boost::asio::steady_timer watchdog_timer_;
    boost::asio::steady_timer retry_timer_;
    std::map<std::string, ReaderState> readers_;
    std::map<std::string, Pending> pending_;          // key: hex(seed)
    std::map<std::string, proto::Secret> responses_;  // key: hex(seed)
    std::unique_ptr<Pkcs11Thread> p11_;               // PKCS#11 only: the thread that owns the module
    std::shared_ptr<Operation> in_flight_;
    // Given up on by the watchdog and still running: each says when its card answers
    // again, and stop() cancels them so that none keeps the loop running.
    std::vector<std::shared_ptr<Operation>> abandoned_;
    std::vector<std::string> in_flight_keys_;
    bool asking_pin_ = false;
    bool service_up_ = false;
    bool stopped_ = false;
    int quick_failures_ = 0;
    unsigned operations_ = 0;
};

}  // namespace ca::smartcard
