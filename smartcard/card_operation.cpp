// SPDX-License-Identifier: MIT
#include "smartcard/card_operation.hpp"

#include <thread>
#include <variant>

namespace ca::smartcard {
namespace {

// The module's answer in the APDU backend's terms, so the service treats both alike.
OperationResult pkcs11_operation(Pkcs11Module* module, const Error* load_error, OperationRequest req) {
    if (!module) return load_error ? *load_error : make_error(Errc::internal, "no PKCS#11 module");
    Pkcs11Request r;
    r.seeds = std::move(req.seeds);
    r.pin = std::move(req.pin);  // wiped by Secret's destructor when `r` goes
    r.pin_pad_login = req.pin_pad_login;
    r.check_determinism = req.check_determinism;
    auto got = module->operate(r);
    if (auto* ok = std::get_if<Pkcs11Responses>(&got)) return Responses{std::move(ok->responses)};
    if (auto* need = std::get_if<Pkcs11NeedPin>(&got)) {
        NeedPin n;
        n.tries_left = need->tries_left;
        n.after_wrong_pin = need->after_wrong_pin;
        n.token_label = need->token_label;
        n.count_low = need->count_low;
        n.pin_pad = need->pin_pad;
        return n;
    }
    return std::get<Error>(got);
}

}  // namespace

namespace detail {

bool CardOperationCore::begin() {
    std::lock_guard lock(mu_);
    if (phase_ != Phase::queued) return false;
    phase_ = Phase::running;
    return true;
}

void CardOperationCore::finish(OperationResult result) {
    std::lock_guard lock(mu_);
    if (phase_ == Phase::done) return;  // cancelled: the result goes nowhere
    phase_ = Phase::done;
    complete(std::move(result));
}

void CardOperationCore::cancel(boost::asio::cancellation_type type) {
    std::lock_guard lock(mu_);
    const bool terminal = (type & boost::asio::cancellation_type::terminal) != boost::asio::cancellation_type::none;
    // Total or partial cancellation would leave no trace only before the card was reached.
    if (phase_ == Phase::done || (phase_ == Phase::running && !terminal)) return;
    phase_ = Phase::done;
    complete(make_error(Errc::cancelled, "the card operation was cancelled"));
}

}  // namespace detail

CardWorker CardWorker::apdu(std::shared_ptr<ApduCounters> counters) {
    return CardWorker([counters = std::move(counters)](OperationRequest req) {
        return run_operation(std::move(req), counters.get());
    });
}

void CardWorker::start(OperationRequest req, std::shared_ptr<detail::CardOperationCore> op) const {
    if (module_thread_) {
        // A Pkcs11Thread job is a std::function, so copyable: the request (and its PIN) rides in a shared_ptr.
        auto shared_req = std::make_shared<OperationRequest>(std::move(req));
        module_thread_->post([op = std::move(op), shared_req](Pkcs11Module* module, const Error* load_error) {
            if (!op->begin()) return;
            op->finish(pkcs11_operation(module, load_error, std::move(*shared_req)));
        });
        return;
    }
    std::thread([op = std::move(op), blocking = blocking_, req = std::move(req)]() mutable {
        if (!op->begin()) return;
        op->finish(blocking(std::move(req)));
    }).detach();
}

}  // namespace ca::smartcard
