// SPDX-License-Identifier: MIT
// async_card_operation: one completion, on the loop, holding the loop's work
// until then; total cancellation honoured only before the card is reached;
// terminal cancellation at once, even while the card's thread is stuck, and
// the late result then goes nowhere.  Blocking functions stand in for a card
// (a thread waits on a promise as SCardTransmit does on a frozen card).
#define BOOST_TEST_MODULE card_operation
#include <boost/test/unit_test.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>

#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>

#include "smartcard/card_operation.hpp"

namespace sc = ca::smartcard;
namespace asio = boost::asio;

namespace {

sc::OperationResult one_response() {
    sc::Responses r;
    r.responses.push_back(ca::proto::Secret::copy_of(std::string_view("response")));
    return r;
}

bool cancelled(const sc::OperationResult& r) {
    const auto* e = std::get_if<sc::Error>(&r);
    return e && e->code == sc::Errc::cancelled;
}

// A card that does not answer until released; says when its thread has let go of everything.
struct StuckCard {
    std::promise<void> entered;
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::promise<void> gone;  // set when the last copy of the blocking function is destroyed

    sc::CardWorker worker() {
        struct Sentinel {
            std::promise<void>* gone;
            Sentinel(const Sentinel&) = delete;
            Sentinel& operator=(const Sentinel&) = delete;
            Sentinel(Sentinel&&) = delete;
            Sentinel& operator=(Sentinel&&) = delete;
            explicit Sentinel(std::promise<void>* g) : gone(g) {}
            ~Sentinel() { gone->set_value(); }
        };
        auto sentinel = std::make_shared<Sentinel>(&gone);
        return sc::CardWorker([this, sentinel](const sc::OperationRequest&) {
            entered.set_value();
            released.wait();
            return one_response();
        });
    }
};

struct Outcome {
    int calls = 0;
    bool on_loop_thread = false;
    sc::OperationResult last;
};

auto record(Outcome& out) {
    return [&out, loop = std::this_thread::get_id()](sc::OperationResult r) {
        ++out.calls;
        out.on_loop_thread = std::this_thread::get_id() == loop;
        out.last = std::move(r);
    };
}

}  // namespace

BOOST_AUTO_TEST_CASE(completes_once_on_the_loop_and_holds_its_work_until_then) {
    asio::io_context io;
    Outcome out;
    sc::async_card_operation(io.get_executor(),
                             sc::CardWorker([](const sc::OperationRequest&) { return one_response(); }),
                             sc::OperationRequest{}, record(out));
    io.run();  // without the operation's work guard this would return before the result
    BOOST_TEST(out.calls == 1);
    BOOST_TEST(out.on_loop_thread);
    const auto* got = std::get_if<sc::Responses>(&out.last);
    BOOST_TEST_REQUIRE(got != nullptr);
    BOOST_TEST(got->responses.size() == 1U);
}

// An operation whose card thread is inside the blocking call, with a cancellation slot.
struct CardReached {
    asio::io_context io;
    Outcome out;
    StuckCard card;
    asio::cancellation_signal cancel;
    bool released = false;

    CardReached() {
        sc::async_card_operation(io.get_executor(), card.worker(), sc::OperationRequest{},
                                 asio::bind_cancellation_slot(cancel.slot(), record(out)));
        card.entered.get_future().wait();
    }
    CardReached(const CardReached&) = delete;
    CardReached& operator=(const CardReached&) = delete;
    CardReached(CardReached&&) = delete;
    CardReached& operator=(CardReached&&) = delete;
    ~CardReached() {
        if (!released) release();
    }
    // The card answers; returns once its thread has finished with the result.
    void release() {
        released = true;
        card.release.set_value();
        card.gone.get_future().wait();
    }
};

BOOST_FIXTURE_TEST_CASE(total_cancellation_is_ignored_once_the_card_is_reached, CardReached) {
    cancel.emit(asio::cancellation_type::total);  // an APDU sent cannot be taken back
    release();
    io.run();
    BOOST_TEST(out.calls == 1);
    BOOST_TEST(std::holds_alternative<sc::Responses>(out.last));
}

BOOST_FIXTURE_TEST_CASE(terminal_cancellation_completes_at_once_and_drops_the_late_result, CardReached) {
    cancel.emit(asio::cancellation_type::terminal);
    io.run();  // returns although the card's thread is still stuck: the work was let go
    BOOST_TEST(out.calls == 1);
    BOOST_TEST(out.on_loop_thread);
    BOOST_TEST(cancelled(out.last));

    release();
    io.restart();
    io.run();
    BOOST_TEST(out.calls == 1);  // that result went nowhere
}

BOOST_AUTO_TEST_CASE(total_cancellation_before_the_card_completes_at_once) {
    // A PKCS#11 job queued behind one stuck in the module (no module here: a load error for each job).
    asio::io_context io;
    Outcome out;
    sc::Pkcs11Thread module_thread(sc::Pkcs11Options{"/nonexistent/crypt-agent-test-pkcs11.so", "auto", {}});
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    module_thread.post([released](sc::Pkcs11Module*, const sc::Error*) { released.wait(); });
    asio::cancellation_signal cancel;
    sc::async_card_operation(io.get_executor(), sc::CardWorker(module_thread), sc::OperationRequest{},
                             asio::bind_cancellation_slot(cancel.slot(), record(out)));
    cancel.emit(asio::cancellation_type::total);
    io.run();
    BOOST_TEST(out.calls == 1);
    BOOST_TEST(cancelled(out.last));

    release.set_value();
    std::promise<void> passed;
    module_thread.post([&passed](sc::Pkcs11Module*, const sc::Error*) { passed.set_value(); });
    passed.get_future().wait();  // the cancelled job came and went before this one
    io.restart();
    io.run();
    BOOST_TEST(out.calls == 1);
}

BOOST_AUTO_TEST_CASE(a_module_that_does_not_load_is_the_result) {
    asio::io_context io;
    Outcome out;
    sc::Pkcs11Thread module_thread(sc::Pkcs11Options{"/nonexistent/crypt-agent-test-pkcs11.so", "auto", {}});
    sc::async_card_operation(io.get_executor(), sc::CardWorker(module_thread), sc::OperationRequest{}, record(out));
    io.run();
    BOOST_TEST(out.calls == 1);
    const auto* e = std::get_if<sc::Error>(&out.last);
    BOOST_TEST_REQUIRE(e != nullptr);
    BOOST_TEST(std::string(sc::to_string(e->code)) == sc::to_string(sc::Errc::bad_profile));
}
