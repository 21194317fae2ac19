// SPDX-License-Identifier: MIT
#include "smartcard/monitor.hpp"

#include <PCSC/pcsclite.h>

#include "smartcard/pcsc_dl.hpp"

#include <algorithm>
#include <chrono>

namespace ca::smartcard {
namespace {

constexpr auto kRetryNoService = std::chrono::milliseconds(500);
constexpr const char* kPnpReader = "\\\\?PnP?\\Notification";

bool card_usable(DWORD state) { return (state & SCARD_STATE_PRESENT) && !(state & SCARD_STATE_MUTE); }

}  // namespace

const char* to_string(MonitorEvent::Kind k) noexcept {
    switch (k) {
    case MonitorEvent::service_up: return "pcscd available";
    case MonitorEvent::service_down: return "pcscd not available";
    case MonitorEvent::reader_added: return "reader added";
    case MonitorEvent::reader_removed: return "reader removed";
    case MonitorEvent::card_inserted: return "card inserted";
    case MonitorEvent::card_removed: return "card removed";
    }
    return "?";
}

Monitor::Monitor(std::shared_ptr<LoopGate> gate, std::function<void(MonitorEvent)> on_event)
    : gate_(std::move(gate)), on_event_(std::move(on_event)) {}

Monitor::~Monitor() { stop(); }

void Monitor::start() {
    if (thread_.joinable()) return;
    thread_ = std::thread([this] { run(); });
}

void Monitor::stop() noexcept {
    if (!thread_.joinable()) return;
    stopping_ = true;
    cv_.notify_all();
    // SCardCancel only wakes a call that is already blocked; repeat it until
    // the thread is out, so a cancel that races with the next call is not lost.
    for (int i = 0; i < 40 && !finished_; ++i) {
        {
            std::lock_guard lock(mu_);
            if (ctx_) pcsc::cancel(ctx_);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (finished_) {
        thread_.join();
    } else {
        // pcscd itself hangs: better a leaked thread than a hung shutdown.
        thread_.detach();
    }
}

void Monitor::emit(MonitorEvent ev) {
    auto fn = on_event_;
    gate_->post([fn, ev = std::move(ev)]() mutable { fn(std::move(ev)); });
}

void Monitor::sleep_unless_stopped(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, d, [this] { return stopping_.load(); });
}

bool Monitor::ensure_context() {
    if (ctx_) return true;
    SCARDCONTEXT ctx = 0;
    // CardService::start() loaded the library or did not start us; this keeps the monitor safe alone.
    const LONG rv = !pcsc::load("the smartcard reader monitor").empty()
                        ? SCARD_E_NO_SERVICE
                        : pcsc::establish_context(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &ctx);
    if (rv != SCARD_S_SUCCESS) {
        if (service_known_up_ || !service_reported_) emit({MonitorEvent::service_down, {}, {}, false});
        service_known_up_ = false;
        service_reported_ = true;
        return false;
    }
    {
        std::lock_guard lock(mu_);
        ctx_ = ctx;
    }
    service_known_up_ = service_reported_ = true;
    pnp_state_ = SCARD_STATE_UNAWARE;
    emit({MonitorEvent::service_up, {}, {}, false});
    relist_readers();
    return true;
}

void Monitor::drop_context() {
    {
        std::lock_guard lock(mu_);
        if (ctx_) pcsc::release_context(ctx_);
        ctx_ = 0;
    }
    // Every reader vanished with the service; they are announced again when it is back.
    for (auto& r : readers_) {
        if (r.present) emit({MonitorEvent::card_removed, r.name, {}, false});
        emit({MonitorEvent::reader_removed, r.name, {}, false});
    }
    readers_.clear();
    emit({MonitorEvent::service_down, {}, {}, false});
    service_known_up_ = false;
}

void Monitor::relist_readers() {
    std::vector<std::string> names;
    DWORD len = 0;
    LONG rv = pcsc::list_readers(ctx_, nullptr, nullptr, &len);
    if (rv == SCARD_S_SUCCESS && len > 0) {
        std::string buf(len, '\0');
        rv = pcsc::list_readers(ctx_, nullptr, buf.data(), &len);
        for (std::size_t i = 0; rv == SCARD_S_SUCCESS && i < buf.size() && buf[i];) {
            names.emplace_back(buf.c_str() + i);
            i += names.back().size() + 1;
        }
    }
    // Gone readers first (their card with them), then new ones in UNAWARE state
    // so the next SCardGetStatusChange reports their card at once.
    for (auto it = readers_.begin(); it != readers_.end();) {
        if (std::find(names.begin(), names.end(), it->name) == names.end()) {
            if (it->present) emit({MonitorEvent::card_removed, it->name, {}, false});
            emit({MonitorEvent::reader_removed, it->name, {}, false});
            it = readers_.erase(it);
        } else {
            ++it;
        }
    }
    for (const auto& n : names) {
        auto known = std::find_if(readers_.begin(), readers_.end(), [&n](const ReaderSlot& s) { return s.name == n; });
        if (known == readers_.end()) {
            readers_.push_back(ReaderSlot{n});
            emit({MonitorEvent::reader_added, n, {}, false});
        }
    }
}

void Monitor::report_changes(std::vector<SCARD_READERSTATE>& rs) {
    bool relist = false;
    if (rs[0].dwEventState & SCARD_STATE_CHANGED) relist = true;
    pnp_state_ = rs[0].dwEventState & ~SCARD_STATE_CHANGED;
    for (std::size_t i = 1; i < rs.size(); ++i) {
        ReaderSlot& slot = readers_[i - 1];
        const DWORD ev = rs[i].dwEventState;
        if (!(ev & SCARD_STATE_CHANGED)) continue;
        slot.state = ev & ~SCARD_STATE_CHANGED;
        if (ev & (SCARD_STATE_UNKNOWN | SCARD_STATE_IGNORE | SCARD_STATE_UNAVAILABLE)) {
            relist = true;
            continue;
        }
        const bool present = card_usable(ev);
        const unsigned events = (ev >> 16) & 0xFFFF;
        // A card pulled and pushed back between two wakes shows only as a new
        // event count: report it as a removal and an insertion (its PIN state is gone).
        const bool swapped = present && slot.present && events != slot.events;
        if (slot.present && (!present || swapped)) emit({MonitorEvent::card_removed, slot.name, {}, false});
        if (present && (!slot.present || swapped)) {
            MonitorEvent in{MonitorEvent::card_inserted, slot.name, {}, false};
            in.atr.assign(rs[i].rgbAtr, rs[i].rgbAtr + std::min<DWORD>(rs[i].cbAtr, MAX_ATR_SIZE));
            emit(std::move(in));
        }
        slot.present = present;
        slot.events = events;
    }
    if (relist) relist_readers();
}

void Monitor::run() {
    while (!stopping_) {
        if (!ensure_context()) {
            sleep_unless_stopped(kRetryNoService);
            continue;
        }
        std::vector<SCARD_READERSTATE> rs(readers_.size() + 1);
        rs[0].szReader = kPnpReader;
        rs[0].dwCurrentState = pnp_state_;
        for (std::size_t i = 0; i < readers_.size(); ++i) {
            rs[i + 1].szReader = readers_[i].name.c_str();
            rs[i + 1].dwCurrentState = readers_[i].state;
        }
        const LONG rv = pcsc::get_status_change(ctx_, INFINITE, rs.data(), static_cast<DWORD>(rs.size()));
        if (stopping_) break;
        switch (rv) {
        case SCARD_S_SUCCESS: report_changes(rs); break;
        case SCARD_E_TIMEOUT:
        case SCARD_E_CANCELLED: break;
        case SCARD_E_UNKNOWN_READER:
        case SCARD_E_READER_UNAVAILABLE:
            relist_readers();
            sleep_unless_stopped(std::chrono::milliseconds(100));  // no busy loop on a flapping reader
            break;
        default:
            // SCARD_F_COMM_ERROR (pcscd killed), SCARD_E_NO_SERVICE, a dead handle:
            // this context is finished; a new one is made when pcscd is back.
            drop_context();
            sleep_unless_stopped(kRetryNoService);
            break;
        }
    }
    {
        std::lock_guard lock(mu_);
        if (ctx_) pcsc::release_context(ctx_);
        ctx_ = 0;
    }
    finished_ = true;
}

}  // namespace ca::smartcard
