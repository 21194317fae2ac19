// SPDX-License-Identifier: MIT
#include "smartcard/pkcs11_uri.hpp"

namespace ca::smartcard {
namespace {

Error uri_error(std::string why) { return make_error(Errc::bad_profile, "card-uri: " + std::move(why)); }

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::string> percent_decode(std::string_view v) {
    std::string out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] != '%') {
            out.push_back(v[i]);
            continue;
        }
        if (i + 2 >= v.size()) return std::nullopt;
        const int hi = hex_digit(v[i + 1]), lo = hex_digit(v[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

}  // namespace

Expected<Pkcs11Uri> parse_pkcs11_uri(std::string_view text) {
    Pkcs11Uri u;
    if (text == "auto") {
        u.automatic = true;
        return u;
    }
    constexpr std::string_view scheme = "pkcs11:";
    if (text.substr(0, scheme.size()) != scheme) return uri_error("expected 'auto' or a URI starting with 'pkcs11:'");
    std::string_view rest = text.substr(scheme.size());
    std::string_view path = rest, query;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
        path = rest.substr(0, q);
        query = rest.substr(q + 1);
    }
    auto each = [](std::string_view list, char sep, auto&& fn) -> std::optional<Error> {
        while (!list.empty()) {
            const auto end = list.find(sep);
            const std::string_view item = list.substr(0, end);
            list = end == std::string_view::npos ? std::string_view{} : list.substr(end + 1);
            if (item.empty()) continue;
            const auto eq = item.find('=');
            if (eq == std::string_view::npos) return uri_error("attribute '" + std::string(item) + "' has no '='");
            if (auto e = fn(item.substr(0, eq), item.substr(eq + 1))) return e;
        }
        return std::nullopt;
    };
    auto path_attr = [&u](std::string_view name, std::string_view raw) -> std::optional<Error> {
        auto value = percent_decode(raw);
        if (!value) return uri_error("bad percent-encoding in '" + std::string(name) + "'");
        auto set = [&](std::optional<std::string>& field) -> std::optional<Error> {
            if (field) return uri_error("'" + std::string(name) + "' given twice");
            field = std::move(*value);
            return std::nullopt;
        };
        if (name == "token") return set(u.token);
        if (name == "manufacturer") return set(u.manufacturer);
        if (name == "serial") return set(u.serial);
        if (name == "model") return set(u.model);
        if (name == "object") return set(u.object);
        if (name == "slot-description") return set(u.slot_description);
        if (name == "type") {
            if (*value != "private") return uri_error("type must be 'private' (the key that signs or derives)");
            return set(u.type);
        }
        if (name == "id") {
            if (u.id) return uri_error("'id' given twice");
            u.id = std::vector<unsigned char>(value->begin(), value->end());
            return std::nullopt;
        }
        if (name == "slot-id")
            return uri_error(
                "slot-id is not stable (the same token has other slot ids through p11-kit); "
                "name the token by label or serial");
        if (name == "library-manufacturer" || name == "library-description" || name == "library-version" ||
            name == "slot-manufacturer")
            return std::nullopt;  // describe the module, which card-module chooses
        return uri_error("unknown attribute '" + std::string(name) + "'");
    };
    auto query_attr = [](std::string_view name, std::string_view) -> std::optional<Error> {
        if (name == "pin-value" || name == "pin-source")
            return uri_error("a PIN in the URI is refused: the PIN is asked through ask-password");
        if (name == "module-name" || name == "module-path")
            return uri_error("'" + std::string(name) + "': use card-module instead");
        return uri_error("unknown query attribute '" + std::string(name) + "'");
    };
    if (auto e = each(path, ';', path_attr)) return *e;
    if (auto e = each(query, '&', query_attr)) return *e;
    return u;
}

std::string pkcs11_uri_escape(std::span<const unsigned char> bytes) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : bytes) {
        if (unreserved(c)) {
            out.push_back(static_cast<char>(c));
            continue;
        }
        out.push_back('%');
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 0xf]);
    }
    return out;
}

std::string format_pkcs11_key_uri(const std::string& token, const std::string& manufacturer, const std::string& model,
                                  const std::string& serial, const std::string& object,
                                  std::span<const unsigned char> id) {
    auto esc = [](const std::string& s) {
        return pkcs11_uri_escape({reinterpret_cast<const unsigned char*>(s.data()), s.size()});
    };
    std::string uri = "pkcs11:model=" + esc(model) + ";manufacturer=" + esc(manufacturer) + ";serial=" + esc(serial) +
                      ";token=" + esc(token);
    if (!object.empty()) uri += ";object=" + esc(object);
    if (!id.empty()) {
        // Every id byte encoded, as p11tool writes ids.
        static constexpr char digits[] = "0123456789ABCDEF";
        uri += ";id=";
        for (unsigned char c : id) {
            uri.push_back('%');
            uri.push_back(digits[c >> 4]);
            uri.push_back(digits[c & 0xf]);
        }
    }
    return uri + ";type=private";
}

}  // namespace ca::smartcard
