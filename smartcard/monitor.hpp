// SPDX-License-Identifier: MIT
// Reader and card arrival/removal, from pcsc-lite's blocking
// SCardGetStatusChange on a thread of its own, delivered into the event loop.
//
// The thread watches the `\\?PnP?\Notification` pseudo-reader (readers come
// and go) and every reader (cards come and go).  When pcscd disappears the
// blocked call returns SCARD_F_COMM_ERROR; the thread then reports
// `service_down` and establishes a new context every 500 ms until pcscd is
// back.  stop() wakes it with SCardCancel and joins it.
#pragma once

#include <PCSC/winscard.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "smartcard/loop_gate.hpp"

namespace ca::smartcard {

struct MonitorEvent {
    enum Kind { service_up, service_down, reader_added, reader_removed, card_inserted, card_removed } kind;
    std::string reader;
    std::vector<unsigned char> atr;  // card_inserted
    bool mute = false;               // card_inserted: present but not answering its reset
};

[[nodiscard]] const char* to_string(MonitorEvent::Kind k) noexcept;

class Monitor {
public:
    // `on_event` runs on the loop (through `gate`), never on the monitor thread.
    Monitor(std::shared_ptr<LoopGate> gate, std::function<void(MonitorEvent)> on_event);
    ~Monitor();
    Monitor(const Monitor&) = delete;
    Monitor& operator=(const Monitor&) = delete;

    void start();
    // Cancels the blocked call and joins the thread (bounded: about 2 s).
    void stop() noexcept;

private:
    struct ReaderSlot {
        std::string name;
        DWORD state = SCARD_STATE_UNAWARE;
        bool present = false;
        unsigned events = 0;  // pcsc-lite's per-reader event counter (high word)
    };
    void run();
    bool ensure_context();
    void drop_context();
    void relist_readers();
    void report_changes(std::vector<SCARD_READERSTATE>& rs);
    void emit(MonitorEvent ev);
    void sleep_unless_stopped(std::chrono::milliseconds d);

    std::shared_ptr<LoopGate> gate_;
    std::function<void(MonitorEvent)> on_event_;
    std::thread thread_;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> finished_{false};
    std::mutex mu_;  // guards ctx_ between the thread and stop()'s SCardCancel
    std::condition_variable cv_;
    SCARDCONTEXT ctx_ = 0;
    bool service_known_up_ = false;
    bool service_reported_ = false;
    DWORD pnp_state_ = SCARD_STATE_UNAWARE;
    std::vector<ReaderSlot> readers_;
};

}  // namespace ca::smartcard
