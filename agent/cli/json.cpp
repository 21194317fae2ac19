// SPDX-License-Identifier: MIT
#include "agent/cli/json.hpp"

#include <stdexcept>

#include "agent/log.hpp"

namespace ca::agent {

std::optional<JsonMode> parse_json_mode(std::string_view s) noexcept {
    if (s == "off") return JsonMode::off;
    if (s == "short") return JsonMode::short_form;
    if (s == "pretty") return JsonMode::pretty;
    return std::nullopt;
}

std::string json_quote(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            switch (c) {
            case '"': out += "\\\""; continue;
            case '\\': out += "\\\\"; continue;
            case '\b': out += "\\b"; continue;
            case '\f': out += "\\f"; continue;
            case '\n': out += "\\n"; continue;
            case '\r': out += "\\r"; continue;
            case '\t': out += "\\t"; continue;
            default: break;
            }
            if (c < 0x20 || c == 0x7f) {
                out += "\\u00";
                out += kHex[c >> 4];
                out += kHex[c & 0xfU];
            } else {
                out += static_cast<char>(c);
            }
            continue;
        }
        char32_t cp = 0;
        const std::size_t len = utf8_at(s, i, cp);
        if (len == 0) {
            out += "\\ufffd";  // not UTF-8: JSON text must be
            ++i;
        } else if (cp == 0x2028 || cp == 0x2029 || (cp >= 0x80 && cp <= 0x9f)) {
            out += "\\u";
            for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(cp >> shift) & 0xfU];
            i += len;
        } else {
            out.append(s.substr(i, len));
            i += len;
        }
    }
    out += '"';
    return out;
}

void JsonWriter::newline_indent() {
    if (!pretty_) return;
    out_ += '\n';
    out_.append(2 * stack_.size(), ' ');
}

void JsonWriter::before_value() {
    if (done_) throw std::logic_error("JsonWriter: a second top-level value");
    if (stack_.empty()) return;
    Level& l = stack_.back();
    if (l.object) {
        if (!l.key_pending) throw std::logic_error("JsonWriter: a value without a key in an object");
        l.key_pending = false;
        return;
    }
    if (l.items++ > 0) out_ += ',';
    newline_indent();
}

JsonWriter& JsonWriter::key(std::string_view k) {
    if (stack_.empty() || !stack_.back().object || stack_.back().key_pending)
        throw std::logic_error("JsonWriter: a key outside an object");
    Level& l = stack_.back();
    if (l.items++ > 0) out_ += ',';
    newline_indent();
    out_ += json_quote(k);
    out_ += pretty_ ? ": " : ":";
    l.key_pending = true;
    return *this;
}

void JsonWriter::open(char c, bool object) {
    before_value();
    out_ += c;
    stack_.push_back(Level{object, 0, false});
}

void JsonWriter::close(char c, bool object) {
    if (stack_.empty() || stack_.back().object != object || stack_.back().key_pending)
        throw std::logic_error("JsonWriter: unbalanced close");
    const bool empty = stack_.back().items == 0;
    stack_.pop_back();
    if (!empty) newline_indent();
    out_ += c;
    if (stack_.empty()) done_ = true;
}

JsonWriter& JsonWriter::begin_object() {
    open('{', true);
    return *this;
}
JsonWriter& JsonWriter::end_object() {
    close('}', true);
    return *this;
}
JsonWriter& JsonWriter::begin_array() {
    open('[', false);
    return *this;
}
JsonWriter& JsonWriter::end_array() {
    close(']', false);
    return *this;
}

void JsonWriter::scalar(std::string_view text) {
    before_value();
    out_ += text;
    if (stack_.empty()) done_ = true;
}

JsonWriter& JsonWriter::value(std::string_view s) {
    scalar(json_quote(s));
    return *this;
}
JsonWriter& JsonWriter::value(bool b) {
    scalar(b ? "true" : "false");
    return *this;
}
JsonWriter& JsonWriter::value(std::int64_t n) {
    scalar(std::to_string(n));
    return *this;
}
JsonWriter& JsonWriter::value(std::uint64_t n) {
    scalar(std::to_string(n));
    return *this;
}
JsonWriter& JsonWriter::null() {
    scalar("null");
    return *this;
}

std::string JsonWriter::str() const {
    if (!stack_.empty()) throw std::logic_error("JsonWriter: unclosed container");
    return out_ + "\n";
}

}  // namespace ca::agent
