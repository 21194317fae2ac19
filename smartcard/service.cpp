// SPDX-License-Identifier: MIT
// The card service's rules (which reader, when to ask for the PIN, retries, hot-plug, the
// watchdog); a little over 400 lines, one job.
#include "smartcard/service.hpp"

#include "smartcard/pcsc_dl.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include <stdexcept>
#include <variant>
#include <vector>

namespace ca::smartcard {
namespace {

constexpr auto kRetryDelay = std::chrono::milliseconds(300);
// After the quick retries: a card that keeps failing (reset over and over by
// another program, busy) is tried at this slower pace, not hammered and not
// given up on; insertion of a card still triggers an attempt at once.
constexpr auto kSlowRetryDelay = std::chrono::seconds(5);

bool retryable(Errc c) {
    switch (c) {
    case Errc::no_service:
    case Errc::no_reader:
    case Errc::no_card:
    case Errc::card_removed:
    case Errc::card_reset:
    case Errc::card_busy: return true;
    default: return false;
    }
}

std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

std::vector<unsigned char> fresh_seed(const CardOptions& options, std::span<const unsigned char> like) {
    if (options.pkcs11)
        if (const unsigned bits = ec_seed_bits(like)) return make_ec_seed(bits);
    std::vector<unsigned char> seed(options.pkcs11 ? 32 : options.profile.challenge_length);
    // getrandom(2) rather than OpenSSL's RAND_bytes: the kernel's CSPRNG is what RAND_bytes
    // seeds from, and it keeps libcrypto out of every path that only needs random bytes.
    for (std::size_t done = 0; done < seed.size();) {
        const ssize_t n = ::getrandom(seed.data() + done, seed.size() - done, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            throw std::runtime_error(std::string("no random bytes for a seed (getrandom: ") + std::strerror(errno) +
                                     ")");
        done += static_cast<std::size_t>(n);
    }
    return seed;
}

struct CardService::Operation {
    std::string reader;
    boost::asio::cancellation_signal cancel;  // bound to the operation's completion
};

std::shared_ptr<CardService> CardService::create(boost::asio::any_io_executor ex, CardOptions options, PinPrompt* pin,
                                                 NoticeHandler notice) {
    return std::make_shared<CardService>(Private{}, std::move(ex), std::move(options), pin, std::move(notice));
}

CardService::CardService(Private, boost::asio::any_io_executor ex, CardOptions options, PinPrompt* pin,
                         NoticeHandler notice)
    : ex_(ex),
      options_(std::move(options)),
      pin_(pin),
      notice_(std::move(notice)),
      gate_(std::make_shared<LoopGate>(ex)),
      watchdog_timer_(ex),
      retry_timer_(ex) {}

CardService::~CardService() { stop(); }

void CardService::start() {
    if (monitor_) return;
    if (options_.pkcs11) {
        Pkcs11Options p = *options_.pkcs11;
        p.pin_pad = options_.pin_pad;
        p11_ = std::make_unique<Pkcs11Thread>(std::move(p));
        // A module hides readers behind tokens: one pseudo-reader stands for it,
        // always "present"; a missing token is a retryable no_card.
        readers_[kPkcs11Reader] = ReaderState{true, false, false, {}};
    }
    // Said once, here, where it is known what needed the library; the monitor then reports the
    // service as down and requests wait as they would for a pcscd that is not running.
    if (std::string why = pcsc::load(options_.pkcs11 ? "reader events beside the PKCS#11 module"
                                                     : "the smartcard (card-profile)");
        !why.empty())
        notify(options_.pkcs11 ? Notice::warning : Notice::error, std::move(why));
    std::weak_ptr<CardService> weak = weak_from_this();
    monitor_ = std::make_unique<Monitor>(gate_, [weak](MonitorEvent ev) {
        if (auto self = weak.lock()) self->on_monitor_event(std::move(ev));
    });
    monitor_->start();
}

void CardService::stop() {
    if (stopped_) return;
    stopped_ = true;
    if (monitor_) monitor_->stop();
    gate_->close();  // late monitor events go nowhere
    watchdog_timer_.cancel();
    retry_timer_.cancel();
    // Each operation completes now (ignored: stopped_) and lets go of the loop; a thread
    // still blocked on a frozen card later finds nobody to tell.
    if (in_flight_) in_flight_->cancel.emit(boost::asio::cancellation_type::terminal);
    for (const auto& op : abandoned_) op->cancel.emit(boost::asio::cancellation_type::terminal);
    in_flight_.reset();
    abandoned_.clear();
    if (asking_pin_ && pin_) pin_->cancel();
    asking_pin_ = false;
    fail_all(make_error(Errc::cancelled, "the smartcard service is shutting down"));
    forget_responses();
    // C_Finalize on the module's own thread, before the caller goes on to exit.
    if (p11_) p11_->stop();
}

void CardService::notify(Notice::Kind k, std::string text) {
    if (notice_) notice_(Notice{k, std::move(text)});
}

void CardService::forget_responses() noexcept { responses_.clear(); }

std::vector<CardService::ReaderView> CardService::readers() const {
    std::vector<ReaderView> out;
    for (const auto& [name, st] : readers_) out.push_back({name, st.present, st.frozen, hex(st.atr)});
    return out;
}

void CardService::request_response(std::vector<unsigned char> seed, bool check_determinism, ResponseHandler handler) {
    enqueue(std::move(seed), check_determinism, std::move(handler));
    try_start();
}

void CardService::request_responses(std::vector<std::pair<std::vector<unsigned char>, ResponseHandler>> requests) {
    for (auto& [seed, handler] : requests) enqueue(std::move(seed), false, std::move(handler));
    try_start();
}

void CardService::enqueue(std::vector<unsigned char> seed, bool check_determinism, ResponseHandler handler) {
    if (stopped_) {
        boost::asio::post(ex_, [handler] { handler(make_error(Errc::cancelled, "the smartcard service is stopped")); });
        return;
    }
    if (options_.pkcs11 && (seed.empty() || seed.size() > 240)) {
        boost::asio::post(
            ex_, [handler] { handler(make_error(Errc::bad_profile, "a PKCS#11 seed must be 1 to 240 bytes")); });
        return;
    }
    if (auto ok = options_.pkcs11 ? Status(Ok{}) : check_seed(options_.profile, seed); !ok) {
        boost::asio::post(ex_, [handler, e = ok.error()] { handler(e); });
        return;
    }
    const std::string key = hex(seed);
    if (auto it = responses_.find(key); it != responses_.end() && !check_determinism) {
        auto copy = std::make_shared<proto::Secret>(it->second.clone());
        boost::asio::post(ex_, [handler, copy] { handler(std::move(*copy)); });
        return;
    }
    Pending& p = pending_[key];
    p.seed = std::move(seed);
    p.check_determinism = p.check_determinism || check_determinism;
    p.handlers.push_back(std::move(handler));
}

std::optional<std::string> CardService::pick_reader() const {
    for (const auto& [name, st] : readers_) {
        if (!st.present || st.frozen || st.pin_refused) continue;
        if (options_.pkcs11) {
            if (name == kPkcs11Reader) return name;
            continue;
        }
        if (!options_.reader_filter.empty() && name.find(options_.reader_filter) == std::string::npos) continue;
        return name;
    }
    return std::nullopt;
}

void CardService::try_start() {
    if (stopped_ || in_flight_ || asking_pin_ || pending_.empty()) return;
    if (auto reader = pick_reader()) launch(*reader, std::nullopt);
}

void CardService::launch(const std::string& reader, std::optional<proto::Secret> pin, bool pin_pad) {
    OperationRequest req;
    req.reader = reader;
    req.profile = options_.profile;
    req.pin = std::move(pin);
    req.pin_pad_login = pin_pad;
    in_flight_keys_.clear();
    for (const auto& [key, p] : pending_) {
        req.seeds.push_back(p.seed);
        req.check_determinism = req.check_determinism || p.check_determinism;
        in_flight_keys_.push_back(key);
    }
    auto op = std::make_shared<Operation>();
    op->reader = reader;
    in_flight_ = op;
    ++operations_;

    // The caller's watchdog races the operation: a frozen card must not hold the loop.
    std::weak_ptr<CardService> weak = weak_from_this();
    watchdog_timer_.expires_after(options_.watchdog);
    watchdog_timer_.async_wait([weak, op](boost::system::error_code ec) {
        if (ec) return;
        if (auto self = weak.lock()) self->on_watchdog(op);
    });
    const CardWorker worker = p11_ ? CardWorker(*p11_) : CardWorker::apdu(counters_);
    async_card_operation(ex_, worker, std::move(req),
                         boost::asio::bind_cancellation_slot(op->cancel.slot(), [weak, op](OperationResult result) {
                             if (auto self = weak.lock()) self->on_operation_done(op, std::move(result));
                         }));
}

void CardService::on_watchdog(const std::shared_ptr<Operation>& op) {
    if (op != in_flight_) return;
    in_flight_.reset();
    abandoned_.push_back(op);
    // A PKCS#11 job still queued behind one stuck in the module never starts; one
    // that is running goes on, and its completion says the card answers again.
    op->cancel.emit(boost::asio::cancellation_type::total);
    readers_[op->reader].frozen = true;
    notify(Notice::error, "the card in reader " + in_quotes(op->reader) + " did not answer within " +
                              std::to_string(options_.watchdog.count()) +
                              " ms; abandoned the operation (remove and reinsert the card)");
    try_start();
}

void CardService::on_operation_done(const std::shared_ptr<Operation>& op, OperationResult result) {
    if (stopped_) return;  // stop() cancelled it
    if (op != in_flight_) {
        std::erase(abandoned_, op);
        // Cancelled before it reached the card (queued behind a stuck job): it says nothing about the card.
        if (const auto* e = std::get_if<Error>(&result); e && e->code == Errc::cancelled) return;
        // An operation the watchdog gave up on finished after all: the card
        // answers again (or is gone), so it may be used for the next attempt.
        if (auto it = readers_.find(op->reader); it != readers_.end() && it->second.frozen) {
            it->second.frozen = false;
            notify(Notice::info, "the card in reader " + in_quotes(op->reader) + " answers again");
            schedule_retry(kRetryDelay);
        }
        return;
    }
    watchdog_timer_.cancel();
    in_flight_.reset();
    const std::vector<std::string> keys = std::move(in_flight_keys_);
    in_flight_keys_.clear();

    if (auto* got = std::get_if<Responses>(&result)) {
        quick_failures_ = 0;
        for (std::size_t i = 0; i < keys.size() && i < got->responses.size(); ++i) {
            auto& slot = responses_[keys[i]];
            slot = std::move(got->responses[i]);
            complete(keys[i], slot);
        }
    } else if (auto* need = std::get_if<NeedPin>(&result)) {
        on_need_pin(op->reader, *need);
        return;
    } else {
        const Error& e = std::get<Error>(result);
        if (retryable(e.code)) {
            on_retryable(e);
            return;
        }
        if (e.code == Errc::pin_blocked) readers_[op->reader].pin_refused = true;
        notify(Notice::error, e.message);
        for (const auto& key : keys) fail(key, e);
    }
    try_start();
}

void CardService::on_need_pin(const std::string& reader, const NeedPin& need) {
    ReaderState& st = readers_[reader];
    if (!pin_) {
        fail_all(make_error(Errc::pin_required,
                            "the card in reader " + in_quotes(reader) + " needs a PIN and no PIN prompt is available"));
        return;
    }
    const bool last = need.tries_left == 1;
    if (last && !options_.allow_last_pin_try) {
        // A wrong PIN now would block the card: leave that decision to a
        // person using the card's own tools, and the volumes to other agents.
        st.pin_refused = true;
        notify(Notice::warning, "the card in reader " + in_quotes(reader) +
                                    " has one PIN try left; crypt-agent will not spend it (verify the PIN "
                                    "with the card's own tool to reset the counter, or type a passphrase)");
        fail_all(make_error(Errc::pin_last_try, "one PIN try left on the card in reader " + in_quotes(reader), 1));
        return;
    }
    if (need.pin_pad) {
        notify(Notice::warning, "enter the PIN on the reader for token " + in_quotes(need.token_label));
        launch(reader, std::nullopt, true);
        return;
    }
    if (need.after_wrong_pin)
        notify(Notice::warning,
               "wrong PIN for " +
                   (need.token_label.empty() ? "the card in reader " + in_quotes(reader)
                                             : "token " + in_quotes(need.token_label)) +
                   (need.tries_left >= 0 ? "; " + std::to_string(need.tries_left) + " tries left" : std::string()));
    asking_pin_ = true;
    std::weak_ptr<CardService> weak = weak_from_this();
    PinPrompt::Request req{need.token_label.empty() ? reader : need.token_label,
                           hex(st.atr),
                           need.tries_left,
                           need.after_wrong_pin,
                           last,
                           need.token_label,
                           need.count_low};
    pin_->ask(req, [weak, reader](Expected<proto::Secret> pin) {
        if (auto self = weak.lock()) self->on_pin_entered(reader, std::move(pin));
    });
}

void CardService::on_pin_entered(const std::string& reader, Expected<proto::Secret> pin) {
    asking_pin_ = false;
    if (stopped_) return;
    if (!pin) {
        notify(Notice::warning, "no PIN for the card in reader " + in_quotes(reader) + ": " + pin.error().message);
        fail_all(pin.error());
        return;
    }
    auto it = readers_.find(reader);
    if (it == readers_.end() || !it->second.present) {
        // The card left while the person typed: the PIN is dropped (wiped) and
        // asked again for the card that comes next.
        notify(Notice::info, "the card left reader " + in_quotes(reader) + " while its PIN was asked; waiting for it");
        return;
    }
    launch(reader, std::move(pin).value());
}

void CardService::on_retryable(const Error& e) {
    ++quick_failures_;
    if (quick_failures_ < kMaxQuickRetries) {
        notify(Notice::info, e.message + "; retrying");
        schedule_retry(kRetryDelay);
    } else {
        notify(Notice::warning, e.message + "; trying again every " + std::to_string(kSlowRetryDelay.count()) +
                                    " s or when a card is inserted");
        schedule_retry(kSlowRetryDelay);
    }
}

void CardService::schedule_retry(std::chrono::milliseconds delay) {
    std::weak_ptr<CardService> weak = weak_from_this();
    retry_timer_.expires_after(delay);
    retry_timer_.async_wait([weak](boost::system::error_code ec) {
        if (ec) return;
        if (auto self = weak.lock()) self->try_start();
    });
}

void CardService::on_monitor_event(MonitorEvent ev) {
    if (stopped_) return;
    switch (ev.kind) {
    case MonitorEvent::service_up:
        // A module that talked to the pcscd that went away holds dead slots:
        // finalize and initialize it again before its next operation.
        if (p11_ && !service_up_) p11_->reinitialize_next();
        service_up_ = true;
        notify(Notice::info, "pcscd is available");
        break;
    case MonitorEvent::service_down:
        if (service_up_) notify(Notice::warning, "pcscd is not available; waiting for it");
        service_up_ = false;
        break;
    case MonitorEvent::reader_added:
        readers_[ev.reader];
        notify(Notice::info, "reader " + in_quotes(ev.reader) + " added");
        break;
    case MonitorEvent::reader_removed:
        readers_.erase(ev.reader);
        notify(Notice::info, "reader " + in_quotes(ev.reader) + " removed");
        break;
    case MonitorEvent::card_inserted: {
        ReaderState& st = readers_[ev.reader];
        st = ReaderState{true, false, false, std::move(ev.atr)};
        quick_failures_ = 0;
        notify(Notice::info, "card inserted in reader " + in_quotes(ev.reader) + " (ATR " + hex(st.atr) + ")");
        if (p11_) readers_[kPkcs11Reader] = ReaderState{true, false, false, {}};
        break;
    }
    case MonitorEvent::card_removed: {
        ReaderState& st = readers_[ev.reader];
        st = ReaderState{};
        notify(Notice::info, "card removed from reader " + in_quotes(ev.reader));
        break;
    }
    }
    try_start();
}

void CardService::complete(const std::string& key, const proto::Secret& response) {
    auto it = pending_.find(key);
    if (it == pending_.end()) return;
    for (auto& h : it->second.handlers) {
        auto copy = std::make_shared<proto::Secret>(response.clone());
        boost::asio::post(ex_, [h = std::move(h), copy] { h(std::move(*copy)); });
    }
    pending_.erase(it);
}

void CardService::fail(const std::string& key, const Error& e) {
    auto it = pending_.find(key);
    if (it == pending_.end()) return;
    for (auto& h : it->second.handlers) boost::asio::post(ex_, [h = std::move(h), e] { h(e); });
    pending_.erase(it);
}

void CardService::fail_all(const Error& e) {
    while (!pending_.empty()) fail(pending_.begin()->first, e);
}

}  // namespace ca::smartcard
