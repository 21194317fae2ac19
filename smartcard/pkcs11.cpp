// SPDX-License-Identifier: MIT
// Over 400 lines on purpose: every call into a PKCS#11 module (C_Initialize to C_Sign and
// C_DeriveKey), its error names and the thread that owns the module are one job: nothing
// else in the tree includes pkcs11.h or touches a session.
#include "smartcard/pkcs11.hpp"

#include <dlfcn.h>

#include <openssl/core_names.h>

#include "smartcard/crypto_dl.hpp"

#include <p11-kit/pkcs11.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#ifndef CRYPT_AGENT_P11_KIT_PROXY
#define CRYPT_AGENT_P11_KIT_PROXY "p11-kit-proxy.so"
#endif

namespace ca::smartcard {

const char* default_pkcs11_module() noexcept { return CRYPT_AGENT_P11_KIT_PROXY; }

namespace {

const char* ckr_name(CK_RV rv) {
    switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_TOKEN_NOT_RECOGNIZED: return "CKR_TOKEN_NOT_RECOGNIZED";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_SESSION_CLOSED: return "CKR_SESSION_CLOSED";
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LEN_RANGE: return "CKR_PIN_LEN_RANGE";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_USER_ALREADY_LOGGED_IN: return "CKR_USER_ALREADY_LOGGED_IN";
    case CKR_KEY_TYPE_INCONSISTENT: return "CKR_KEY_TYPE_INCONSISTENT";
    case CKR_KEY_FUNCTION_NOT_PERMITTED: return "CKR_KEY_FUNCTION_NOT_PERMITTED";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
    case CKR_DATA_LEN_RANGE: return "CKR_DATA_LEN_RANGE";
    case CKR_CRYPTOKI_NOT_INITIALIZED: return "CKR_CRYPTOKI_NOT_INITIALIZED";
    case CKR_ATTRIBUTE_TYPE_INVALID: return "CKR_ATTRIBUTE_TYPE_INVALID";
    case CKR_ATTRIBUTE_SENSITIVE: return "CKR_ATTRIBUTE_SENSITIVE";
    case CKR_TEMPLATE_INCOMPLETE: return "CKR_TEMPLATE_INCOMPLETE";
    case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_DOMAIN_PARAMS_INVALID: return "CKR_DOMAIN_PARAMS_INVALID";
    default: return nullptr;
    }
}

std::string rv_text(CK_RV rv) {
    if (const char* n = ckr_name(rv)) return n;
    char buf[32];
    std::snprintf(buf, sizeof buf, "CKR 0x%lx", static_cast<unsigned long>(rv));
    return buf;
}

Error p11_error(CK_RV rv, const std::string& what) {
    Errc code = Errc::internal;
    switch (rv) {
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED: code = Errc::card_removed; break;
    case CKR_PIN_LOCKED: code = Errc::pin_blocked; break;
    default: break;
    }
    return make_error(code, what + ": " + rv_text(rv));
}

std::string trimmed(const unsigned char* p, std::size_t n) {
    std::string s(reinterpret_cast<const char*>(p), n);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
    return s;
}

// The DER OIDs of the curves ECDH keys may use (CKA_EC_PARAMS holds the OID).
constexpr unsigned char kOidP256[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
constexpr unsigned char kOidP384[] = {0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22};

unsigned curve_bits(const std::vector<unsigned char>& params) {
    auto is = [&params](std::span<const unsigned char> oid) {
        return params.size() == oid.size() && std::equal(oid.begin(), oid.end(), params.begin());
    };
    if (is(kOidP256)) return 256;
    if (is(kOidP384)) return 384;
    return 0;
}

struct TokenSlot {
    CK_SLOT_ID slot = 0;
    Pkcs11Token info;
};

}  // namespace

std::string Pkcs11Key::type_text() const {
    switch (kind) {
    case KeyKind::rsa: return "RSA-" + std::to_string(bits);
    case KeyKind::ec: return bits ? "EC P-" + std::to_string(bits) : "EC (unsupported curve)";
    default: return "other";
    }
}

std::string Pkcs11Token::pin_state() const {
    if (pin_locked) return "locked";
    if (pin_final_try) return "final try";
    if (pin_count_low) return "count low";
    return "ok";
}

struct Pkcs11Module::Impl {
    Pkcs11Options options;
    Pkcs11Uri uri;
    void* handle = nullptr;
    CK_FUNCTION_LIST_PTR f = nullptr;
    // C_Initialize said CKR_OK: this instance finalizes.  CKR_CRYPTOKI_ALREADY_INITIALIZED
    // means another instance in this process (an agent's card source being
    // replaced on SIGHUP) owns the module's initialisation: not ours to end.
    bool initialized = false;
    // The last operation found no matching token: the next one starts from a
    // fresh C_Initialize, because p11-kit's proxy drops a module that failed to
    // initialise (SoftHSM without its token directory, a driver without its
    // daemon) and never retries it by itself.
    bool stale = false;

    ~Impl() {
        if (initialized && f) f->C_Finalize(nullptr);
        // p11-kit's proxy and OpenSC start threads of their own; dlclose after
        // C_Finalize is what p11-kit's own tools do.
        if (handle) ::dlclose(handle);
    }

    Status initialize() {
        CK_C_INITIALIZE_ARGS args{};
        args.flags = CKF_OS_LOCKING_OK;
        const CK_RV rv = f->C_Initialize(&args);
        // Retryable: a module may fail to start while what it needs is not there yet
        // (SoftHSM without its token directory); the request waits and tries again.
        if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
            return make_error(Errc::no_service, "C_Initialize of " + module_name() + ": " + rv_text(rv));
        initialized = rv == CKR_OK;
        return Ok{};
    }

    std::string module_name() const {
        return options.module.empty() ? std::string(default_pkcs11_module()) : options.module;
    }

    Expected<std::vector<TokenSlot>> tokens() {
        CK_ULONG n = 0;
        CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &n);
        if (rv == CKR_CRYPTOKI_NOT_INITIALIZED) {
            // The instance that owned the initialisation finalized it: take it over.
            if (auto st = initialize(); !st) return std::move(st).error();
            rv = f->C_GetSlotList(CK_TRUE, nullptr, &n);
        }
        if (rv != CKR_OK) return p11_error(rv, "C_GetSlotList");
        std::vector<CK_SLOT_ID> slots(n);
        if (n) {
            rv = f->C_GetSlotList(CK_TRUE, slots.data(), &n);
            if (rv != CKR_OK) return p11_error(rv, "C_GetSlotList");
            slots.resize(n);
        }
        std::vector<TokenSlot> out;
        for (CK_SLOT_ID s : slots) {
            CK_TOKEN_INFO ti{};
            if (f->C_GetTokenInfo(s, &ti) != CKR_OK) continue;  // pulled between the calls
            if (!(ti.flags & CKF_TOKEN_INITIALIZED)) continue;
            TokenSlot t;
            t.slot = s;
            t.info.label = trimmed(ti.label, sizeof ti.label);
            t.info.manufacturer = trimmed(ti.manufacturerID, sizeof ti.manufacturerID);
            t.info.model = trimmed(ti.model, sizeof ti.model);
            t.info.serial = trimmed(ti.serialNumber, sizeof ti.serialNumber);
            t.info.login_required = ti.flags & CKF_LOGIN_REQUIRED;
            t.info.protected_path = ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH;
            t.info.pin_count_low = ti.flags & CKF_USER_PIN_COUNT_LOW;
            t.info.pin_final_try = ti.flags & CKF_USER_PIN_FINAL_TRY;
            t.info.pin_locked = ti.flags & CKF_USER_PIN_LOCKED;
            CK_SLOT_INFO si{};
            if (f->C_GetSlotInfo(s, &si) == CKR_OK)
                t.info.slot_description = trimmed(si.slotDescription, sizeof si.slotDescription);
            out.push_back(std::move(t));
        }
        return out;
    }

    bool token_matches(const Pkcs11Token& t) const {
        if (uri.token && *uri.token != t.label) return false;
        if (uri.manufacturer && *uri.manufacturer != t.manufacturer) return false;
        if (uri.serial && *uri.serial != t.serial) return false;
        if (uri.model && *uri.model != t.model) return false;
        if (uri.slot_description && *uri.slot_description != t.slot_description) return false;
        return true;
    }

    std::vector<unsigned char> attribute(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
        CK_ATTRIBUTE a{type, nullptr, 0};
        if (f->C_GetAttributeValue(s, o, &a, 1) != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION) return {};
        std::vector<unsigned char> v(a.ulValueLen);
        a.pValue = v.data();
        if (f->C_GetAttributeValue(s, o, &a, 1) != CKR_OK) return {};
        v.resize(a.ulValueLen);
        return v;
    }

    std::optional<CK_ULONG> ulong_attribute(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
        CK_ULONG v = 0;
        CK_ATTRIBUTE a{type, &v, sizeof v};
        if (f->C_GetAttributeValue(s, o, &a, 1) != CKR_OK || a.ulValueLen != sizeof v) return std::nullopt;
        return v;
    }

    std::optional<bool> bool_attribute(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
        CK_BBOOL v = CK_FALSE;
        CK_ATTRIBUTE a{type, &v, sizeof v};
        if (f->C_GetAttributeValue(s, o, &a, 1) != CKR_OK || a.ulValueLen != sizeof v) return std::nullopt;
        return v == CK_TRUE;
    }

    std::vector<CK_OBJECT_HANDLE> find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, bool with_uri_filter) {
        std::vector<CK_ATTRIBUTE> tmpl;
        tmpl.push_back({CKA_CLASS, &cls, sizeof cls});
        std::vector<unsigned char> id;
        std::string label;
        if (with_uri_filter && uri.id) {
            id = *uri.id;
            tmpl.push_back({CKA_ID, id.data(), id.size()});
        }
        if (with_uri_filter && uri.object) {
            label = *uri.object;
            tmpl.push_back({CKA_LABEL, label.data(), label.size()});
        }
        std::vector<CK_OBJECT_HANDLE> out;
        if (f->C_FindObjectsInit(s, tmpl.data(), tmpl.size()) != CKR_OK) return out;
        for (;;) {
            CK_OBJECT_HANDLE h[16];
            CK_ULONG n = 0;
            if (f->C_FindObjects(s, h, 16, &n) != CKR_OK || n == 0) break;
            out.insert(out.end(), h, h + n);
        }
        f->C_FindObjectsFinal(s);
        return out;
    }

    // Type, size and usability of a key object (a private key, or its public twin).
    Pkcs11Key describe(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, const Pkcs11Token& t, bool is_private) {
        Pkcs11Key k;
        k.id = attribute(s, o, CKA_ID);
        const auto label = attribute(s, o, CKA_LABEL);
        k.label.assign(label.begin(), label.end());
        k.uri = format_pkcs11_key_uri(t.label, t.manufacturer, t.model, t.serial, k.label, k.id);
        const auto type = ulong_attribute(s, o, CKA_KEY_TYPE);
        if (type && *type == CKK_RSA) {
            k.kind = KeyKind::rsa;
            if (auto bits = ulong_attribute(s, o, CKA_MODULUS_BITS)) k.bits = static_cast<unsigned>(*bits);
            else k.bits = static_cast<unsigned>(attribute(s, o, CKA_MODULUS).size() * 8);
            const auto sign = is_private ? bool_attribute(s, o, CKA_SIGN) : bool_attribute(s, o, CKA_VERIFY);
            k.usable = sign.value_or(true);
            if (!k.usable) k.why_not = "the key may not sign (CKA_SIGN false)";
        } else if (type && *type == CKK_EC) {
            k.kind = KeyKind::ec;
            k.bits = curve_bits(attribute(s, o, CKA_EC_PARAMS));
            if (!k.bits) {
                k.why_not = "unsupported curve (P-256 and P-384 only)";
            } else if (is_private) {
                const auto derive = bool_attribute(s, o, CKA_DERIVE);
                k.usable = derive.value_or(false);
                if (!k.usable) k.why_not = "ECDSA only (no CKA_DERIVE): ECDSA signatures are random, ECDH is needed";
            } else {
                k.usable = true;
            }
        } else {
            k.why_not = "neither an RSA nor an EC key";
        }
        return k;
    }

    struct Session {
        Impl* impl;
        CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
        bool logged_in = false;
        ~Session() {
            if (h == CK_INVALID_HANDLE) return;
            // Log out so no later client of this module uses the token on our PIN.
            if (logged_in) impl->f->C_Logout(h);
            impl->f->C_CloseSession(h);
        }
    };

    Expected<CK_SESSION_HANDLE> open_session(CK_SLOT_ID slot) {
        CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
        const CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &h);
        if (rv != CKR_OK) return p11_error(rv, "C_OpenSession");
        return h;
    }

    Expected<TokenSlot> pick_token() {
        auto all = tokens();
        if (!all) return std::move(all).error();
        std::vector<TokenSlot> hits;
        for (auto& t : *all)
            if (token_matches(t.info)) hits.push_back(std::move(t));
        if (hits.empty())
            return make_error(Errc::no_card, "no PKCS#11 token matches card-uri " + options.uri + " (module " +
                                                 module_name() + ", " + std::to_string(all->size()) +
                                                 " tokens present)");
        if (hits.size() > 1 && uri.automatic) {
            // p11-kit's proxy also lists tokens that hold no keys at all (its trust
            // module's "System Trust"): for auto, only tokens that may hold a private
            // key count (one shows, or it hides its private objects behind a login).
            std::vector<TokenSlot> keyed;
            for (auto& t : hits) {
                bool may_hold = t.info.login_required;
                if (!may_hold)
                    if (auto sh = open_session(t.slot)) {
                        Session session{this, *sh};
                        may_hold = !find(session.h, CKO_PRIVATE_KEY, false).empty();
                    }
                if (may_hold) keyed.push_back(std::move(t));
            }
            if (!keyed.empty()) hits = std::move(keyed);
        }
        if (hits.size() > 1) {
            std::string names;
            for (const auto& t : hits) names += (names.empty() ? "\"" : ", \"") + t.info.label + "\"";
            return make_error(Errc::bad_profile, "card-uri " + options.uri + " matches " + std::to_string(hits.size()) +
                                                     " tokens (" + names + "); name one with token= or serial=");
        }
        return std::move(hits.front());
    }

    // The one usable private key the URI names.
    Expected<std::pair<CK_OBJECT_HANDLE, Pkcs11Key>> pick_key(CK_SESSION_HANDLE s, const Pkcs11Token& t) {
        std::vector<std::pair<CK_OBJECT_HANDLE, Pkcs11Key>> keys;
        for (CK_OBJECT_HANDLE o : find(s, CKO_PRIVATE_KEY, true)) keys.emplace_back(o, describe(s, o, t, true));
        if (keys.empty())
            return make_error(Errc::bad_profile,
                              "token \"" + t.label + "\" has no private key matching card-uri " + options.uri);
        std::vector<std::pair<CK_OBJECT_HANDLE, Pkcs11Key>> usable;
        for (auto& k : keys)
            if (k.second.usable) usable.push_back(k);
        if (usable.empty())
            return make_error(Errc::bad_profile, "the key " + keys.front().second.uri + " (" +
                                                     keys.front().second.type_text() +
                                                     ") cannot be used: " + keys.front().second.why_not);
        if (usable.size() > 1)
            return make_error(Errc::bad_profile, "card-uri " + options.uri + " matches " +
                                                     std::to_string(usable.size()) +
                                                     " usable private keys on token \"" + t.label +
                                                     "\"; name one with id= or object= (see `crypt-agent card list`)");
        return std::move(usable.front());
    }

    Expected<proto::Secret> sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, std::span<const unsigned char> seed) {
        CK_MECHANISM m{CKM_RSA_PKCS, nullptr, 0};
        CK_RV rv = f->C_SignInit(s, &m, key);
        if (rv != CKR_OK) return p11_error(rv, "C_SignInit(CKM_RSA_PKCS)");
        std::vector<unsigned char> in(seed.begin(), seed.end());
        CK_ULONG len = 0;
        rv = f->C_Sign(s, in.data(), in.size(), nullptr, &len);
        if (rv != CKR_OK) return p11_error(rv, "C_Sign(CKM_RSA_PKCS)");
        proto::Secret out(len);
        rv = f->C_Sign(s, in.data(), in.size(), out.data(), &len);
        if (rv != CKR_OK) return p11_error(rv, "C_Sign(CKM_RSA_PKCS)");
        out.truncate(len);
        return out;
    }

    Expected<proto::Secret> derive(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, unsigned bits,
                                   std::span<const unsigned char> point) {
        if (ec_seed_bits(point) != bits)
            return make_error(Errc::bad_profile, "this seed is not a P-" + std::to_string(bits) +
                                                     " point: the volume was enrolled for another key");
        std::vector<unsigned char> pub(point.begin(), point.end());
        CK_ECDH1_DERIVE_PARAMS params{};
        params.kdf = CKD_NULL;
        params.pPublicData = pub.data();
        params.ulPublicDataLen = pub.size();
        CK_MECHANISM m{CKM_ECDH1_DERIVE, &params, sizeof params};
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
        CK_ULONG value_len = (bits + 7) / 8;
        CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
        CK_ATTRIBUTE tmpl[] = {
            {CKA_CLASS, &cls, sizeof cls},
            {CKA_KEY_TYPE, &kt, sizeof kt},
            {CKA_VALUE_LEN, &value_len, sizeof value_len},
            {CKA_TOKEN, &no, sizeof no},
            {CKA_SENSITIVE, &no, sizeof no},
            {CKA_EXTRACTABLE, &yes, sizeof yes},
        };
        CK_OBJECT_HANDLE secret = CK_INVALID_HANDLE;
        CK_RV rv = f->C_DeriveKey(s, &m, key, tmpl, sizeof tmpl / sizeof tmpl[0], &secret);
        if (rv != CKR_OK) return p11_error(rv, "C_DeriveKey(CKM_ECDH1_DERIVE)");
        proto::Secret out(value_len);
        CK_ATTRIBUTE a{CKA_VALUE, out.data(), value_len};
        rv = f->C_GetAttributeValue(s, secret, &a, 1);
        f->C_DestroyObject(s, secret);
        if (rv != CKR_OK) return p11_error(rv, "reading the ECDH secret");
        out.truncate(a.ulValueLen);
        return out;
    }

    // Enrolment's check that a signature comes from the key the URI names.
    Status verify_rsa(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, std::span<const unsigned char> seed,
                      const proto::Secret& sig) {
        auto n = attribute(s, key, CKA_MODULUS);
        auto e = attribute(s, key, CKA_PUBLIC_EXPONENT);
        if (n.empty() || e.empty()) {
            // Some tokens keep the public part only in the public key object.
            CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
            auto id = attribute(s, key, CKA_ID);
            CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, id.data(), id.size()}};
            CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
            CK_ULONG got = 0;
            if (f->C_FindObjectsInit(s, tmpl, 2) == CKR_OK) {
                (void)f->C_FindObjects(s, &h, 1, &got);
                f->C_FindObjectsFinal(s);
            }
            if (got == 1) {
                n = attribute(s, h, CKA_MODULUS);
                e = attribute(s, h, CKA_PUBLIC_EXPONENT);
            }
        }
        if (n.empty() || e.empty())
            return make_error(Errc::bad_profile,
                              "the RSA key's public part is not readable: cannot verify its signature");
        if (std::string why = crypto::load("checking a PKCS#11 key's signature"); !why.empty())
            return make_error(Errc::internal, std::move(why));
        OSSL_PARAM_BLD* bld = crypto::OSSL_PARAM_BLD_new();
        BIGNUM* bn_n = crypto::BN_bin2bn(n.data(), static_cast<int>(n.size()), nullptr);
        BIGNUM* bn_e = crypto::BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr);
        crypto::OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n);
        crypto::OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
        OSSL_PARAM* params = crypto::OSSL_PARAM_BLD_to_param(bld);
        EVP_PKEY_CTX* fctx = crypto::EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
        EVP_PKEY* pkey = nullptr;
        if (fctx && crypto::EVP_PKEY_fromdata_init(fctx) == 1)
            (void)crypto::EVP_PKEY_fromdata(fctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
        bool ok = false;
        if (pkey) {
            EVP_PKEY_CTX* vctx = crypto::EVP_PKEY_CTX_new(pkey, nullptr);
            // No digest: PKCS#1 v1.5 type 1 padding over the raw seed, as CKM_RSA_PKCS signs.
            ok = vctx && crypto::EVP_PKEY_verify_init(vctx) == 1 &&
                 crypto::EVP_PKEY_CTX_set_rsa_padding(vctx, RSA_PKCS1_PADDING) == 1 &&
                 crypto::EVP_PKEY_verify(vctx, sig.data(), sig.size(), seed.data(), seed.size()) == 1;
            crypto::EVP_PKEY_CTX_free(vctx);
        }
        crypto::EVP_PKEY_free(pkey);
        crypto::EVP_PKEY_CTX_free(fctx);
        crypto::OSSL_PARAM_free(params);
        crypto::BN_free(bn_n);
        crypto::BN_free(bn_e);
        crypto::OSSL_PARAM_BLD_free(bld);
        if (!ok)
            return make_error(Errc::not_deterministic,
                              "the token's signature does not verify against the key's public part; refusing it");
        return Ok{};
    }

    Pkcs11NeedPin need_pin(const Pkcs11Token& t, bool wrong, bool pad) {
        Pkcs11NeedPin n;
        n.token_label = t.label;
        n.after_wrong_pin = wrong;
        n.count_low = t.pin_count_low;
        n.tries_left = t.pin_final_try ? 1 : -1;
        n.pin_pad = pad;
        return n;
    }

    // Fresh flags after a wrong PIN (the counter moved).
    Pkcs11Token refresh(CK_SLOT_ID slot, const Pkcs11Token& t) {
        CK_TOKEN_INFO ti{};
        Pkcs11Token out = t;
        if (f->C_GetTokenInfo(slot, &ti) != CKR_OK) return out;
        out.pin_count_low = ti.flags & CKF_USER_PIN_COUNT_LOW;
        out.pin_final_try = ti.flags & CKF_USER_PIN_FINAL_TRY;
        out.pin_locked = ti.flags & CKF_USER_PIN_LOCKED;
        return out;
    }

    Result operate(const Pkcs11Request& req) {
        if (stale) {
            f->C_Finalize(nullptr);
            initialized = false;
            if (auto st = initialize(); !st) return std::move(st).error();
            stale = false;
        }
        auto picked = pick_token();
        if (!picked) {
            stale = picked.error().code == Errc::no_card;
            return std::move(picked).error();
        }
        const Pkcs11Token& t = picked->info;
        if (t.pin_locked)
            return make_error(Errc::pin_blocked, "the PIN of token \"" + t.label + "\" is locked (CKF_USER_PIN_LOCKED)",
                              0);
        auto sh = open_session(picked->slot);
        if (!sh) return std::move(sh).error();
        Session session{this, *sh};
        const bool pad = options.pin_pad == Pkcs11Options::PinPad::yes ||
                         (options.pin_pad == Pkcs11Options::PinPad::automatic && t.protected_path);
        if (t.login_required) {
            CK_SESSION_INFO si{};
            const bool already = f->C_GetSessionInfo(session.h, &si) == CKR_OK &&
                                 (si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS);
            if (!already) {
                if (!req.pin && !req.pin_pad_login) return need_pin(t, false, pad);
                CK_RV rv = CKR_OK;
                if (req.pin_pad_login) {
                    rv = f->C_Login(session.h, CKU_USER, nullptr, 0);
                } else {
                    rv = f->C_Login(session.h, CKU_USER, const_cast<unsigned char*>(req.pin->data()), req.pin->size());
                }
                if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE ||
                    // OpenSC's CAC driver reports a wrong PIN as CKR_GENERAL_ERROR (no retry counter).
                    (rv == CKR_GENERAL_ERROR && !req.pin_pad_login)) {
                    const Pkcs11Token now = refresh(picked->slot, t);
                    if (now.pin_locked)
                        return make_error(Errc::pin_blocked,
                                          "wrong PIN; the PIN of token \"" + t.label + "\" is now locked", 0);
                    return need_pin(now, true, pad);
                }
                if (rv == CKR_PIN_LOCKED)
                    return make_error(Errc::pin_blocked, "the PIN of token \"" + t.label + "\" is locked", 0);
                if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
                    return p11_error(rv, "C_Login on token \"" + t.label + "\"");
                session.logged_in = rv == CKR_OK;
            }
        }
        auto key = pick_key(session.h, t);
        if (!key) return std::move(key).error();
        // Named variables, not a structured binding: the lambda below captures them, which clang
        // before 16 (clang-tidy 14) rejects for bindings.
        const CK_OBJECT_HANDLE key_handle = key->first;
        const Pkcs11Key info = key->second;
        Pkcs11Responses out;
        out.token_label = t.label;
        for (const auto& seed : req.seeds) {
            auto once = [&]() {
                return info.kind == KeyKind::rsa ? sign(session.h, key_handle, seed)
                                                 : derive(session.h, key_handle, info.bits, seed);
            };
            auto first = once();
            if (!first) return std::move(first).error();
            if (req.check_determinism) {
                auto second = once();
                if (!second) return std::move(second).error();
                if (!first->equals(*second))
                    return make_error(Errc::not_deterministic, "the key " + info.uri +
                                                                   " answered the same seed differently twice; "
                                                                   "it cannot make stable keys");
                if (info.kind == KeyKind::rsa)
                    if (auto st = verify_rsa(session.h, key_handle, seed, *first); !st) return std::move(st).error();
            }
            out.responses.push_back(std::move(*first));
        }
        return out;
    }
};

Pkcs11Module::Pkcs11Module(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pkcs11Module::~Pkcs11Module() = default;

Expected<std::unique_ptr<Pkcs11Module>> Pkcs11Module::load(const Pkcs11Options& options) {
    auto uri = parse_pkcs11_uri(options.uri);
    if (!uri) return std::move(uri).error();
    auto impl = std::make_unique<Impl>();
    impl->options = options;
    impl->uri = std::move(*uri);
    const std::string path = impl->module_name();
    impl->handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!impl->handle) {
        const char* why = ::dlerror();
        return make_error(Errc::bad_profile,
                          "cannot load the PKCS#11 module " + path + ": " + (why ? why : "dlopen failed"));
    }
    using GetList = CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR);
    auto get = reinterpret_cast<GetList>(::dlsym(impl->handle, "C_GetFunctionList"));
    if (!get || get(&impl->f) != CKR_OK || !impl->f)
        return make_error(Errc::bad_profile, path + " is not a PKCS#11 module (no C_GetFunctionList)");
    if (auto st = impl->initialize(); !st) return std::move(st).error();
    return std::unique_ptr<Pkcs11Module>(new Pkcs11Module(std::move(impl)));
}

Status Pkcs11Module::reinitialize() {
    impl_->f->C_Finalize(nullptr);  // stale slots after pcscd restarted: finalize whoever initialized
    impl_->initialized = false;
    return impl_->initialize();
}

Expected<std::vector<Pkcs11Token>> Pkcs11Module::list(
    const std::function<std::optional<proto::Secret>(const Pkcs11Token&)>& pin_for) {
    auto all = impl_->tokens();
    if (!all) return std::move(all).error();
    std::vector<Pkcs11Token> out;
    for (auto& ts : *all) {
        Pkcs11Token t = ts.info;
        auto sh = impl_->open_session(ts.slot);
        if (!sh) {
            t.note = sh.error().message;
            out.push_back(std::move(t));
            continue;
        }
        Impl::Session session{impl_.get(), *sh};
        auto collect = [&] {
            t.keys.clear();
            for (CK_OBJECT_HANDLE o : impl_->find(session.h, CKO_PRIVATE_KEY, false))
                t.keys.push_back(impl_->describe(session.h, o, t, true));
        };
        collect();
        if (t.keys.empty() && t.login_required) {
            t.keys_need_login = true;
            std::optional<proto::Secret> pin = pin_for ? pin_for(t) : std::nullopt;
            if (pin) {
                const CK_RV rv = impl_->f->C_Login(session.h, CKU_USER, pin->data(), pin->size());
                if (rv == CKR_OK) {
                    session.logged_in = true;
                    collect();
                } else {
                    t.note = "login failed: " + rv_text(rv);
                }
            }
        }
        out.push_back(std::move(t));
    }
    return out;
}

Expected<Pkcs11Key> Pkcs11Module::describe_key() {
    auto picked = impl_->pick_token();
    if (!picked) return std::move(picked).error();
    auto sh = impl_->open_session(picked->slot);
    if (!sh) return std::move(sh).error();
    Impl::Session session{impl_.get(), *sh};
    // Private keys visible without a login first, then the public twins.
    auto priv = impl_->find(session.h, CKO_PRIVATE_KEY, true);
    if (priv.size() == 1) return impl_->describe(session.h, priv.front(), picked->info, true);
    auto pub = impl_->find(session.h, CKO_PUBLIC_KEY, true);
    if (pub.size() == 1) return impl_->describe(session.h, pub.front(), picked->info, false);
    return make_error(Errc::bad_profile, "cannot tell which key card-uri " + impl_->options.uri +
                                             " names without logging in (" + std::to_string(pub.size()) +
                                             " public keys match); add id= to the URI");
}

Pkcs11Module::Result Pkcs11Module::operate(const Pkcs11Request& req) { return impl_->operate(req); }

std::vector<unsigned char> make_ec_seed(unsigned bits) {
    if (std::string why = crypto::load("an EC key's seed (ephemeral key)"); !why.empty()) throw std::runtime_error(why);
    EVP_PKEY* key = crypto::EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", bits == 384 ? "P-384" : "P-256");
    if (!key) throw std::runtime_error("OpenSSL could not make an ephemeral EC key");
    std::vector<unsigned char> point(1 + 2 * ((bits + 7) / 8));
    std::size_t len = 0;
    const int ok = crypto::EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size(),
                                                           &len);
    // The private half is freed (and cleared by OpenSSL) at once: only the public point is kept.
    crypto::EVP_PKEY_free(key);
    if (ok != 1 || len != point.size() || point[0] != 0x04)
        throw std::runtime_error("OpenSSL gave an unexpected EC public point");
    return point;
}

unsigned ec_seed_bits(std::span<const unsigned char> seed) noexcept {
    if (seed.empty() || seed[0] != 0x04) return 0;
    if (seed.size() == 65) return 256;
    if (seed.size() == 97) return 384;
    return 0;
}

// ---- the card thread -----------------------------------------------------------

struct Pkcs11Thread::Shared {
    Pkcs11Options options;
    std::mutex m;
    std::condition_variable cv;
    std::deque<Job> jobs;
    bool stopping = false;
    bool reinit = false;
    bool exited = false;
};

Pkcs11Thread::Pkcs11Thread(Pkcs11Options options) : shared_(std::make_shared<Shared>()) {
    shared_->options = std::move(options);
    thread_ = std::thread([s = shared_] {
        std::unique_ptr<Pkcs11Module> module;
        std::optional<Error> load_error;
        for (;;) {
            Job job;
            bool reinit = false;
            {
                std::unique_lock lock(s->m);
                s->cv.wait(lock, [&s] { return s->stopping || !s->jobs.empty(); });
                if (s->stopping) break;
                job = std::move(s->jobs.front());
                s->jobs.pop_front();
                reinit = std::exchange(s->reinit, false);
            }
            if (!module) {
                auto loaded = Pkcs11Module::load(s->options);
                if (loaded) {
                    module = std::move(*loaded);
                    load_error.reset();
                } else {
                    load_error = loaded.error();
                }
            } else if (reinit) {
                if (auto st = module->reinitialize(); !st) {
                    module.reset();
                    load_error = st.error();
                }
            }
            job(module.get(), load_error ? &*load_error : nullptr);
        }
        module.reset();  // C_Finalize here, on the thread that made every other call
        std::lock_guard lock(s->m);
        s->exited = true;
        s->cv.notify_all();
    });
}

Pkcs11Thread::~Pkcs11Thread() { stop(); }

void Pkcs11Thread::post(Job job) {
    std::lock_guard lock(shared_->m);
    shared_->jobs.push_back(std::move(job));
    shared_->cv.notify_all();
}

void Pkcs11Thread::reinitialize_next() {
    std::lock_guard lock(shared_->m);
    shared_->reinit = true;
}

void Pkcs11Thread::stop() noexcept {
    if (!thread_.joinable()) return;
    std::unique_lock lock(shared_->m);
    shared_->stopping = true;
    shared_->jobs.clear();
    shared_->cv.notify_all();
    // A job stuck in the module (a frozen card) cannot be interrupted: wait a
    // little for a normal finish, then leave the thread behind.
    const bool done = shared_->cv.wait_for(lock, std::chrono::seconds(3), [this] { return shared_->exited; });
    lock.unlock();
    if (done) thread_.join();
    else thread_.detach();
}

}  // namespace ca::smartcard
