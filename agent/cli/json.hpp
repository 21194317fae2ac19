// SPDX-License-Identifier: MIT
// The --json=short|pretty output of the commands that show state (list, cache status,
// card list, card status), as systemd's tools offer it: "short" is the whole document on
// one line, "pretty" the same document indented.  A small writer of our own, so the
// agent needs no JSON library; it only writes, never parses.
//
// Strings are escaped per RFC 8259: '"', '\\' and control characters (short forms where
// JSON has them, else \u00XX); bytes that are not UTF-8 become U+FFFD, so the output is
// always valid UTF-8 whatever an ask file's Message held; U+2028/2029 are escaped too
// (they end a line for JavaScript).  Secrets never come here: callers pass counts, names
// and hashes only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ca::agent {

enum class JsonMode { off, short_form, pretty };

// "off", "short", "pretty"; nullopt for anything else.
[[nodiscard]] std::optional<JsonMode> parse_json_mode(std::string_view s) noexcept;

// One JSON document.  Calls must nest properly (begin/end pairs; a key before each value
// inside an object); a misuse is a programming error and throws std::logic_error.
class JsonWriter {
public:
    explicit JsonWriter(JsonMode mode) : pretty_(mode == JsonMode::pretty) {}

    JsonWriter& begin_object();
    JsonWriter& end_object();
    JsonWriter& begin_array();
    JsonWriter& end_array();
    JsonWriter& key(std::string_view k);

    JsonWriter& value(std::string_view s);
    JsonWriter& value(const char* s) { return value(std::string_view(s)); }
    JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
    JsonWriter& value(bool b);
    JsonWriter& value(std::int64_t n);
    JsonWriter& value(std::uint64_t n);
    JsonWriter& value(int n) { return value(static_cast<std::int64_t>(n)); }
    JsonWriter& value(unsigned n) { return value(static_cast<std::uint64_t>(n)); }
    JsonWriter& null();

    // key(k) then value(v).
    template <typename T>
    JsonWriter& field(std::string_view k, const T& v) {
        key(k);
        return value(v);
    }
    // key(k) then value(*v), or null when empty.
    template <typename T>
    JsonWriter& field(std::string_view k, const std::optional<T>& v) {
        key(k);
        return v ? value(*v) : null();
    }

    // The document with a final newline; every container must be closed.
    [[nodiscard]] std::string str() const;

private:
    void before_value();
    void scalar(std::string_view text);
    void open(char c, bool object);
    void close(char c, bool object);
    void newline_indent();

    struct Level {
        bool object = false;
        unsigned items = 0;
        bool key_pending = false;
    };
    bool pretty_;
    bool done_ = false;
    std::vector<Level> stack_;
    std::string out_;
};

// s as a JSON string literal, quotes included.
[[nodiscard]] std::string json_quote(std::string_view s);

}  // namespace ca::agent
