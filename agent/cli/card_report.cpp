// SPDX-License-Identifier: MIT
// `card list` and `card status`: readers, cards, tokens and keys, as text or JSON; never a
// PIN try spent (list --login asks for one through ask-password).
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

// One PIN through ask-password on a private loop (card list --login).
std::optional<proto::Secret> ask_pin_blocking(const CardCliEnv& env, std::chrono::seconds timeout,
                                              const sc::Pkcs11Token& t) {
    boost::asio::io_context io;
    PinAsker asker(io, PinAskerOptions{env.ask_dir, timeout, 0});
    std::optional<proto::Secret> out;
    sc::PinPrompt::Request req;
    req.reader = t.label;
    req.token_label = t.label;
    req.count_low = t.pin_count_low;
    req.last_try = t.pin_final_try;
    req.tries_left = t.pin_final_try ? 1 : -1;
    WaitLine wait("the PIN of token \"" + t.label + "\" (asked through ask-password)",
                  std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
    std::string why;
    asker.ask(req, [&out, &why](sc::Expected<proto::Secret> pin) {
        if (pin) out = std::move(pin).value();
        else why = pin.error().message;
    });
    io.run();
    wait.end(out ? std::string("PIN entered") : "no PIN: " + why);
    return out;
}

std::string hex_of(const std::vector<unsigned char>& bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char b : bytes) {
        out += kHex[b >> 4];
        out += kHex[b & 0xfU];
    }
    return out;
}

// The JSON of one key (card list, card status): no secret exists here, a key is a name.
void key_json(JsonWriter& j, const sc::Pkcs11Key& k) {
    j.begin_object()
        .field("uri", k.uri)
        .field("label", k.label)
        .field("id", hex_of(k.id))
        .field("type", k.type_text())
        .field("bits", k.bits)
        .field("usable", k.usable);
    j.key("why_not");
    if (k.usable) j.null();
    else j.value(k.why_not);
    j.end_object();
}

void token_json(JsonWriter& j, const sc::Pkcs11Token& t, bool with_keys) {
    j.begin_object()
        .field("label", t.label)
        .field("manufacturer", t.manufacturer)
        .field("model", t.model)
        .field("serial", t.serial)
        .field("slot", t.slot_description)
        .field("login_required", t.login_required)
        .field("pin", t.pin_state())
        .field("pin_pad", t.protected_path);
    if (with_keys) {
        j.field("keys_need_login", t.keys_need_login);
        j.key("note");
        if (t.note.empty()) j.null();
        else j.value(t.note);
        j.key("keys").begin_array();
        for (const auto& k : t.keys) key_json(j, k);
        j.end_array();
    }
    j.end_object();
}

void readers_text(const sc::Expected<std::vector<std::string>>& readers) {
    if (readers) {
        for (const auto& r : *readers) std::cout << "reader \"" << r << "\"\n";
        if (readers->empty()) std::cout << "no PC/SC readers\n";
    } else {
        std::cout << "PC/SC: " << readers.error().message << "\n";
    }
}

void tokens_text(const std::string& module, const std::vector<sc::Pkcs11Token>& tokens) {
    std::cout << "module " << module << "\n";
    if (tokens.empty()) std::cout << "no tokens\n";
    for (const auto& t : tokens) {
        std::cout << "token \"" << t.label << "\": manufacturer \"" << t.manufacturer << "\", model \"" << t.model
                  << "\", serial \"" << t.serial << "\", slot \"" << t.slot_description << "\", login "
                  << (t.login_required ? "required" : "not required") << ", PIN " << t.pin_state()
                  << (t.protected_path ? ", PIN pad" : "") << "\n";
        if (!t.note.empty()) std::cout << "  " << t.note << "\n";
        if (t.keys.empty())
            std::cout << (t.keys_need_login ? "  private keys hidden before login (use --login)\n"
                                            : "  no private keys\n");
        for (const auto& k : t.keys)
            std::cout << "  key " << k.uri << " " << k.type_text() << " "
                      << (k.usable ? "usable" : "not usable: " + k.why_not) << "\n";
    }
}

// Fields documented in crypt-agent(8), section JSON OUTPUT.
void list_json(const sc::Expected<std::vector<std::string>>& readers, const std::string& module,
               const std::vector<sc::Pkcs11Token>& tokens, JsonMode mode) {
    JsonWriter j(mode);
    j.begin_object().key("pcsc").begin_object().field("available", readers.has_value());
    j.key("error");
    if (readers) j.null();
    else j.value(readers.error().message);
    j.key("readers").begin_array();
    if (readers)
        for (const auto& r : *readers) j.value(r);
    j.end_array().end_object();
    j.field("module", module).key("tokens").begin_array();
    for (const auto& t : tokens) token_json(j, t, true);
    j.end_array().end_object();
    std::cout << j.str();
}

}  // namespace

// PC/SC readers, then the module's tokens with their private keys.  The
// module is loaded, used and finalized on this thread.
int run_list(const CardCommandOptions& o, const CardCliEnv& env, const Log& log) {
    const auto readers = sc::list_readers();
    sc::Pkcs11Options p = o.card.pkcs11.value_or(sc::Pkcs11Options{});
    const bool json = o.json != JsonMode::off;
    if (!json) readers_text(readers);  // before the module: it may not load
    auto module = sc::Pkcs11Module::load(p);
    if (!module) {
        log(3, module.error().message);
        return 1;
    }
    const std::string module_path = p.module.empty() ? sc::default_pkcs11_module() : p.module;
    auto tokens = (*module)->list([&](const sc::Pkcs11Token& t) -> std::optional<proto::Secret> {
        if (!o.login) return std::nullopt;
        if (t.pin_final_try && !o.card.allow_last_pin_try) {
            log(4, "token \"" + t.label + "\" has its final PIN try; not logging in (card-allow-last-pin-try)");
            return std::nullopt;
        }
        if (t.pin_locked) return std::nullopt;
        return ask_pin_blocking(env, o.pin_timeout, t);
    });
    if (!tokens) {
        log(3, tokens.error().message);
        return 1;
    }
    if (json) list_json(readers, module_path, *tokens, o.json);
    else tokens_text(module_path, *tokens);
    return 0;
}

namespace {

// PKCS#11 status: the token and key card-uri chooses, without logging in.
int run_status_pkcs11(const CardCommandOptions& o, const Log& log) {
    auto module = sc::Pkcs11Module::load(*o.card.pkcs11);
    if (!module) {
        log(3, module.error().message);
        return 1;
    }
    auto tokens = (*module)->list(nullptr);
    if (!tokens) {
        log(3, tokens.error().message);
        return 1;
    }
    auto key = (*module)->describe_key();
    // The token the key lives on, by the label its URI names.
    std::vector<const sc::Pkcs11Token*> holders;
    if (key)
        for (const auto& t : *tokens)
            if (key->uri.find(
                    "token=" +
                    sc::pkcs11_uri_escape({reinterpret_cast<const unsigned char*>(t.label.data()), t.label.size()}) +
                    ";") != std::string::npos)
                holders.push_back(&t);
    if (o.json != JsonMode::off) {
        JsonWriter j(o.json);
        j.begin_object().field("backend", "pkcs11").field("card_uri", o.card.pkcs11->uri);
        j.key("error");
        if (key) j.null();
        else j.value(key.error().message);
        j.key("key");
        if (key) key_json(j, *key);
        else j.null();
        j.key("tokens").begin_array();
        for (const auto* t : holders) token_json(j, *t, false);
        j.end_array().end_object();
        std::cout << j.str();
        return key && key->usable ? 0 : 1;
    }
    std::cout << "card-uri " << o.card.pkcs11->uri << ": ";
    if (!key) {
        std::cout << key.error().message << "\n";
        return 1;
    }
    std::cout << "key " << key->uri << " " << key->type_text() << " "
              << (key->usable ? "usable" : "not usable: " + key->why_not) << "\n";
    for (const auto* t : holders)
        std::cout << "token \"" << t->label << "\": PIN " << t->pin_state() << (t->protected_path ? ", PIN pad" : "")
                  << "\n";
    return key->usable ? 0 : 1;
}

// One reader as `card status` shows it.
struct ReaderLine {
    std::string name;
    bool answered = true;  // false: the probe was abandoned after the watchdog
    sc::ReaderStatus st;
};

void status_text(const std::vector<ReaderLine>& lines, bool none, const CardCommandOptions& o) {
    if (none) std::cout << "no readers\n";
    for (const auto& l : lines) {
        std::cout << "reader \"" << l.name << "\": ";
        if (!l.answered) {
            std::cout << "card does not answer (abandoned after " << o.card.watchdog.count() << " ms)\n";
            continue;
        }
        if (l.st.error) {
            std::cout << "error: " << l.st.error->message << '\n';
            continue;
        }
        if (!l.st.card_present) {
            std::cout << "no card\n";
            continue;
        }
        std::cout << "card present, ATR " << l.st.atr << ", profile \"" << o.card.profile.name << "\": application "
                  << l.st.application << ", PIN " << (l.st.pin.empty() ? "-" : l.st.pin) << '\n';
    }
}

// Fields documented in crypt-agent(8), section JSON OUTPUT.
void status_json(const std::vector<ReaderLine>& lines, const CardCommandOptions& o) {
    JsonWriter j(o.json);
    j.begin_object().field("backend", "pcsc").field("profile", o.card.profile.name).key("readers").begin_array();
    for (const auto& l : lines) {
        const bool present = l.answered && !l.st.error && l.st.card_present;
        j.begin_object()
            .field("name", l.name)
            .field("answers", l.answered)
            .field("card_present", l.answered ? l.st.card_present : true);
        j.key("error");
        if (!l.answered)
            j.value("card does not answer (abandoned after " + std::to_string(o.card.watchdog.count()) + " ms)");
        else if (l.st.error) j.value(l.st.error->message);
        else j.null();
        j.key("atr");
        if (present) j.value(l.st.atr);
        else j.null();
        j.key("application");
        if (present) j.value(l.st.application);
        else j.null();
        j.key("pin");
        if (present && !l.st.pin.empty()) j.value(l.st.pin);
        else j.null();
        j.end_object();
    }
    j.end_array().end_object();
    std::cout << j.str();
}

}  // namespace

int run_status(const CardCommandOptions& o, const Log& log) {
    if (o.card.pkcs11) return run_status_pkcs11(o, log);
    auto readers = sc::list_readers();
    if (!readers) {
        log(3, readers.error().message + " (is pcscd running?)");
        return 1;
    }
    int rc = 0;
    std::vector<ReaderLine> lines;
    for (const auto& name : *readers) {
        if (!o.card.reader_filter.empty() && name.find(o.card.reader_filter) == std::string::npos) continue;
        // The probe blocks on a frozen card; it runs on a thread we can walk away from.
        auto result = std::make_shared<std::promise<sc::ReaderStatus>>();
        auto fut = result->get_future();
        std::thread([result, name, profile = o.card.profile] {
            result->set_value(sc::probe_reader(name, profile, nullptr));
        }).detach();
        ReaderLine line{name, true, {}};
        if (fut.wait_for(o.card.watchdog) != std::future_status::ready) {
            line.answered = false;
            rc = 1;
        } else {
            line.st = fut.get();
            if (line.st.error) rc = 1;
        }
        lines.push_back(std::move(line));
    }
    if (o.json != JsonMode::off) status_json(lines, o);
    else status_text(lines, readers->empty(), o);
    return rc;
}

}  // namespace ca::agent::card_cmd
