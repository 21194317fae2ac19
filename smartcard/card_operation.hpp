// SPDX-License-Identifier: MIT
// One card operation as an asynchronous operation of the event loop.
//
// The blocking calls run off the loop (card_io.hpp, pkcs11.hpp): an APDU
// operation on a thread of its own, a PKCS#11 operation on the thread that owns
// the module.  async_card_operation completes exactly once, on the handler's
// executor (by default the loop's), and keeps that executor's work count up
// until then, as Asio's cpp20/operations/callback_wrapper.cpp does for a
// callback from a foreign thread.
//
// Cancellation, through the cancellation slot bound to the handler:
//   * total: honoured only before the blocking calls start (a PKCS#11 job
//     queued behind one that is stuck in the module): the operation then
//     completes with Errc::cancelled and never reaches the card.  Once started,
//     an APDU cannot be taken back, so the operation runs on and completes with
//     its result.
//   * terminal: completes at once with Errc::cancelled and drops the work; a
//     thread still blocked in pcsc-lite or the module later finds nobody to
//     tell.  After it nothing of the operation touches the executor, so the
//     io_context may go away while a frozen card holds the thread for ever.
// A watchdog is the caller's: race the completion against a timer (Asio's
// cpp20/coroutines/timeout_watchdog.cpp), and emit total on an operation it
// gives up on; its completion still says when an abandoned card answers again.
#pragma once

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "smartcard/card_io.hpp"
#include "smartcard/pkcs11.hpp"

namespace ca::smartcard {

namespace detail {

// What the card's thread and the loop share: the phase, under a lock, so that
// the result and a cancellation race for the one completion.
class CardOperationCore {
public:
    CardOperationCore() = default;
    CardOperationCore(const CardOperationCore&) = delete;
    CardOperationCore& operator=(const CardOperationCore&) = delete;
    CardOperationCore(CardOperationCore&&) = delete;
    CardOperationCore& operator=(CardOperationCore&&) = delete;
    virtual ~CardOperationCore() = default;

    // Card thread: true when the blocking calls may start (no cancellation came first).
    [[nodiscard]] bool begin();
    // Card thread: completes with `result` unless a cancellation completed first.
    void finish(OperationResult result);
    // Loop: a cancellation emitted on the handler's slot.
    void cancel(boost::asio::cancellation_type type);

protected:
    // Hands `result` to the handler on its executor and lets go of the work; runs once, under the lock.
    virtual void complete(OperationResult result) = 0;

private:
    enum class Phase { queued, running, done };
    std::mutex mu_;
    Phase phase_ = Phase::queued;
};

template <class Handler, class Executor>
class CardOperation final : public CardOperationCore {
public:
    CardOperation(Handler handler, const Executor& ex) : handler_(std::move(handler)), work_(ex) {}

private:
    void complete(OperationResult result) override {
        // Posted, never run inline: the caller may be inside its own cancellation.
        boost::asio::post(work_.get_executor(), [handler = std::move(*handler_), result = std::move(result)]() mutable {
            std::move(handler)(std::move(result));
        });
        handler_.reset();
        work_.reset();
    }

    std::optional<Handler> handler_;
    boost::asio::executor_work_guard<Executor> work_;
};

// Installed in the handler's cancellation slot; weak, so a finished operation is not kept.
class CardOperationCanceller {
public:
    explicit CardOperationCanceller(std::weak_ptr<CardOperationCore> op) : op_(std::move(op)) {}
    void operator()(boost::asio::cancellation_type type) const {
        if (auto o = op_.lock()) o->cancel(type);
    }

private:
    std::weak_ptr<CardOperationCore> op_;
};

}  // namespace detail

// Where an operation's blocking calls run.
class CardWorker {
public:
    using Blocking = std::function<OperationResult(OperationRequest)>;
    // APDU profile: run_operation on a thread per operation.  Operations are
    // rare (one per boot and seed), and a thread stuck in SCardTransmit on a
    // frozen card must not hold up the next one.  APDUs are counted into `counters`.
    [[nodiscard]] static CardWorker apdu(std::shared_ptr<ApduCounters> counters);
    // `blocking` on a thread per operation (apdu(); tests block it at will).
    explicit CardWorker(Blocking blocking) : blocking_(std::move(blocking)) {}
    // PKCS#11: the thread that owns the module (every call on the thread that loaded it).
    explicit CardWorker(Pkcs11Thread& module_thread) : module_thread_(&module_thread) {}

    // Runs `req` off the loop and reports through `op` (async_card_operation's part).
    void start(OperationRequest req, std::shared_ptr<detail::CardOperationCore> op) const;

private:
    Blocking blocking_;
    Pkcs11Thread* module_thread_ = nullptr;
};

// Runs `request` on `worker` and completes with void(OperationResult) on the
// handler's associated executor, `ex` when it has none.
template <class Executor, boost::asio::completion_token_for<void(OperationResult)> Token>
auto async_card_operation(const Executor& ex, const CardWorker& worker, OperationRequest request, Token&& token) {
    auto initiation = [](auto handler, const Executor& fallback, const CardWorker& on, OperationRequest req) {
        using Handler = decltype(handler);
        auto loop = boost::asio::get_associated_executor(handler, fallback);
        auto slot = boost::asio::get_associated_cancellation_slot(handler);
        auto op = std::make_shared<detail::CardOperation<Handler, decltype(loop)>>(std::move(handler), loop);
        if (slot.is_connected()) slot.template emplace<detail::CardOperationCanceller>(op);
        on.start(std::move(req), std::move(op));
    };
    return boost::asio::async_initiate<Token, void(OperationResult)>(initiation, token, ex, worker, std::move(request));
}

}  // namespace ca::smartcard
