// SPDX-License-Identifier: MIT
// The PKCS#11 backend: a module (p11-kit's proxy by default) answers seeds
// with a private key chosen by an RFC 7512 URI.
//
//   RSA key: response = C_Sign(CKM_RSA_PKCS, seed), deterministic by
//            PKCS#1 v1.5's design.
//   EC key (P-256, P-384): response = the shared X coordinate of
//            C_DeriveKey(CKM_ECDH1_DERIVE, CKD_NULL) between the card's key and
//            the seed, which for these keys is the uncompressed public point of
//            an ephemeral key made at enrolment (make_ec_seed) whose private
//            half is freed at once.  ECDSA is never used (random per signature).
//
// The module is loaded with dlopen only when a configuration names one
// (card-uri or card-module): a typed-passphrase system never maps it.  One
// Pkcs11Module belongs to one thread: every call, C_Finalize included, runs on
// the thread that made it (Pkcs11Thread for the agent's loop; the command's
// own thread for the CLI).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "proto/secret.hpp"
#include "smartcard/expected.hpp"
#include "smartcard/pkcs11_uri.hpp"

namespace ca::smartcard {

struct Pkcs11Options {
    std::string module;        // empty: p11-kit's proxy (kP11KitProxy)
    std::string uri = "auto";  // card-uri
    enum class PinPad { automatic, yes, no } pin_pad = PinPad::automatic;
};

// p11-kit's proxy module, from pkg-config at build time.
[[nodiscard]] const char* default_pkcs11_module() noexcept;

enum class KeyKind { rsa, ec, other };

struct Pkcs11Key {
    std::string uri;
    std::string label;
    std::vector<unsigned char> id;
    KeyKind kind = KeyKind::other;
    unsigned bits = 0;  // RSA modulus or EC field size
    bool usable = false;
    std::string why_not;            // when !usable: "ECDSA only (no CKA_DERIVE)", "unsupported curve", ...
    std::string type_text() const;  // "RSA-2048", "EC P-256", ...
};

struct Pkcs11Token {
    std::string label, manufacturer, model, serial, slot_description;
    bool login_required = false;
    bool protected_path = false;  // CKF_PROTECTED_AUTHENTICATION_PATH: a PIN pad (or a claim of one)
    bool pin_count_low = false, pin_final_try = false, pin_locked = false;
    bool keys_need_login = false;  // no private key visible before C_Login
    std::vector<Pkcs11Key> keys;
    std::string note;                             // why the keys could not be listed, if so
    [[nodiscard]] std::string pin_state() const;  // "ok", "count low", "final try", "locked"
};

// What the card wants before it answers (see NeedPin in card_io.hpp).
struct Pkcs11NeedPin {
    std::string token_label;
    int tries_left = -1;           // 1 with CKF_USER_PIN_FINAL_TRY; -1 unknown
    bool count_low = false;        // CKF_USER_PIN_COUNT_LOW
    bool after_wrong_pin = false;  // C_Login said CKR_PIN_INCORRECT (SoftHSM) or CKR_GENERAL_ERROR (OpenSC CAC)
    bool pin_pad = false;          // log in on the reader: no PIN to ask
};

struct Pkcs11Request {
    std::vector<std::vector<unsigned char>> seeds;
    std::optional<proto::Secret> pin;  // wiped by the caller after the operation
    bool pin_pad_login = false;        // C_Login with a NULL PIN (the reader asks)
    bool check_determinism = false;    // each seed twice, compare; RSA: verify against the public key
};

struct Pkcs11Responses {
    std::vector<proto::Secret> responses;
    std::string token_label;
};

class Pkcs11Module {
public:
    // dlopen + C_GetFunctionList + C_Initialize; bad_profile when the file is
    // not a PKCS#11 module, internal for C_Initialize failures.
    [[nodiscard]] static Expected<std::unique_ptr<Pkcs11Module>> load(const Pkcs11Options& options);
    ~Pkcs11Module();  // C_Finalize + dlclose, on the owning thread
    Pkcs11Module(const Pkcs11Module&) = delete;
    Pkcs11Module& operator=(const Pkcs11Module&) = delete;

    // C_Finalize + C_Initialize: after pcscd restarted, a module's slots are stale.
    [[nodiscard]] Status reinitialize();

    // Tokens and their private keys; with `pin_for` tokens that need a login
    // are logged in to list private objects (nullopt from pin_for skips one).
    [[nodiscard]] Expected<std::vector<Pkcs11Token>> list(
        const std::function<std::optional<proto::Secret>(const Pkcs11Token&)>& pin_for);

    // The key the URI names, without logging in (public key objects or
    // visible private keys); for the EC curve of a new seed.
    [[nodiscard]] Expected<Pkcs11Key> describe_key();

    // Responses for every seed in one session and one login.
    //   Pkcs11NeedPin: call again with a PIN (or pin_pad_login).
    //   Errors: no_card (no matching token: retried on card events), pin_blocked,
    //   pin_last_try is the caller's rule, bad_profile (no such key, ECDSA-only,
    //   ambiguous auto), not_deterministic, card_removed, internal.
    using Result = std::variant<Pkcs11Responses, Pkcs11NeedPin, Error>;
    [[nodiscard]] Result operate(const Pkcs11Request& req);

    struct Impl;

private:
    explicit Pkcs11Module(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// A fresh seed for a key: 32 random bytes for RSA; for EC the uncompressed
// public point of a new ephemeral key on the key's curve (private half freed).
[[nodiscard]] std::vector<unsigned char> make_ec_seed(unsigned bits);
// The curve size of a seed that is an uncompressed P-256/P-384 point, or 0.
[[nodiscard]] unsigned ec_seed_bits(std::span<const unsigned char> seed) noexcept;

// The one thread that owns a module for the agent's loop.  Jobs run in order;
// the module is loaded at the first job, reinitialised before the next job
// after reinitialize_next(), and finalized on this thread by stop() (or the
// destructor).  A job stuck in the module (the watchdog gave up on it) keeps
// the thread: stop() then waits a moment and leaves the thread behind.
class Pkcs11Thread {
public:
    using Job = std::function<void(Pkcs11Module*, const Error* load_error)>;
    explicit Pkcs11Thread(Pkcs11Options options);
    ~Pkcs11Thread();
    Pkcs11Thread(const Pkcs11Thread&) = delete;
    Pkcs11Thread& operator=(const Pkcs11Thread&) = delete;
    void post(Job job);
    void reinitialize_next();
    void stop() noexcept;

private:
    void run();
    struct Shared;
    std::shared_ptr<Shared> shared_;
    std::thread thread_;
};

}  // namespace ca::smartcard
