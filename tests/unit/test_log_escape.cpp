// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>
#include <string>

#include "agent/log.hpp"

using ca::agent::escaped;

BOOST_AUTO_TEST_SUITE(log_escape)

BOOST_AUTO_TEST_CASE(plain_text_unchanged) {
    BOOST_TEST(escaped("cryptsetup:/dev/vda2") == "cryptsetup:/dev/vda2");
    BOOST_TEST(escaped("ask.AbC123") == "ask.AbC123");
    BOOST_TEST(escaped("") == "");
    // Other UTF-8 stays readable.
    BOOST_TEST(escaped("caf\xc3\xa9 \xe2\x82\xac") == "caf\xc3\xa9 \xe2\x82\xac");
}

BOOST_AUTO_TEST_CASE(control_bytes_c_style) {
    BOOST_TEST(escaped("ask.x\n<0>forged") == "ask.x\\n<0>forged");
    BOOST_TEST(escaped("a\rb") == "a\\rb");
    BOOST_TEST(escaped("\a\b\f\t\v") == "\\a\\b\\f\\t\\v");
    BOOST_TEST(escaped(std::string("a\0b", 3)) == "a\\x00b");
    BOOST_TEST(escaped("\x1b[31m") == "\\x1b[31m");
    BOOST_TEST(escaped("\x7f") == "\\x7f");
    BOOST_TEST(escaped("back\\slash") == "back\\\\slash");  // an escape cannot be forged
}

BOOST_AUTO_TEST_CASE(unicode_line_breaks_and_bidi) {
    BOOST_TEST(escaped("a\xe2\x80\xa8"
                       "b") == "a\\u2028b");  // LINE SEPARATOR
    BOOST_TEST(escaped("a\xe2\x80\xa9"
                       "b") == "a\\u2029b");  // PARAGRAPH SEPARATOR
    BOOST_TEST(escaped("a\xc2\x85"
                       "b") == "a\\u0085b");       // NEL
    BOOST_TEST(escaped("\xc2\x9b") == "\\u009b");  // C1 CSI
    for (const char* bidi :
         {"\xe2\x80\xaa", "\xe2\x80\xab", "\xe2\x80\xac", "\xe2\x80\xad", "\xe2\x80\xae", "\xe2\x81\xa6",
          "\xe2\x81\xa7", "\xe2\x81\xa8", "\xe2\x81\xa9", "\xe2\x80\x8e", "\xe2\x80\x8f", "\xd8\x9c"})
        BOOST_TEST(escaped(bidi).rfind("\\u", 0) == 0u);
    BOOST_TEST(escaped("\xe2\x80\xae") == "\\u202e");
}

BOOST_AUTO_TEST_CASE(invalid_utf8_as_hex) {
    BOOST_TEST(escaped("\xff") == "\\xff");
    BOOST_TEST(escaped("\xc0\x8a") == "\\xc0\\x8a");                    // overlong '\n'
    BOOST_TEST(escaped("\xe2\x80") == "\\xe2\\x80");                    // truncated U+2028
    BOOST_TEST(escaped("\xed\xa0\x80") == "\\xed\\xa0\\x80");           // a surrogate
    BOOST_TEST(escaped("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
}

BOOST_AUTO_TEST_CASE(output_is_one_printable_line) {
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    const auto e = escaped(all);
    for (unsigned char c : e) BOOST_TEST((c >= 0x20 && c < 0x7f));
}

BOOST_AUTO_TEST_SUITE_END()
