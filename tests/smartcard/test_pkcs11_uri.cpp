// SPDX-License-Identifier: MIT
#define BOOST_TEST_MODULE pkcs11_uri
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "smartcard/pkcs11_uri.hpp"

namespace sc = ca::smartcard;

BOOST_AUTO_TEST_CASE(token_and_key_attributes_percent_decoded) {
    auto u = sc::parse_pkcs11_uri(
        "pkcs11:model=PKCS%2315%20emulated;manufacturer=piv_II;serial=00000000;token=My%20Card;object=KEY%20MAN;"
        "id=%01%02;type=private");
    BOOST_TEST_REQUIRE(u.has_value());
    BOOST_TEST(!u->automatic);
    BOOST_TEST(*u->token == "My Card");
    BOOST_TEST(*u->model == "PKCS#15 emulated");
    BOOST_TEST(*u->manufacturer == "piv_II");
    BOOST_TEST(*u->serial == "00000000");
    BOOST_TEST(*u->object == "KEY MAN");
    BOOST_TEST((*u->id == std::vector<unsigned char>{0x01, 0x02}));
    BOOST_TEST(sc::parse_pkcs11_uri("auto")->automatic);
    BOOST_TEST(sc::parse_pkcs11_uri("pkcs11:")->token.has_value() == false);
}

BOOST_AUTO_TEST_CASE(refused_uris_say_why) {
    struct Case {
        const char* uri;
        const char* why;
    };
    for (const Case& c : {Case{"pkcs11:token=a?pin-value=123456", "PIN in the URI"},
                          Case{"pkcs11:token=a?pin-source=file:/x", "PIN in the URI"},
                          Case{"pkcs11:slot-id=17", "slot-id is not stable"},
                          Case{"pkcs11:token=a;type=cert", "type must be 'private'"},
                          Case{"pkcs11:token=a;token=b", "given twice"}, Case{"pkcs11:id=%0", "percent-encoding"},
                          Case{"pkcs11:id=%zz", "percent-encoding"}, Case{"pkcs11:colour=blue", "unknown attribute"},
                          Case{"pkcs11:token", "no '='"}, Case{"token=a", "pkcs11:"}}) {
        auto u = sc::parse_pkcs11_uri(c.uri);
        BOOST_TEST_REQUIRE(!u.has_value(), c.uri);
        BOOST_TEST(u.error().message.find(c.why) != std::string::npos, c.uri << ": " << u.error().message);
    }
}

BOOST_AUTO_TEST_CASE(formatted_key_uris_parse_back) {
    const unsigned char id[] = {0x00, 0xff, 0x41};
    const std::string uri = sc::format_pkcs11_key_uri("a;b c", "SoftHSM project", "SoftHSM v2", "e248", "k/1", id);
    BOOST_TEST(uri ==
               "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=e248;token=a%3Bb%20c;"
               "object=k%2F1;id=%00%FF%41;type=private");
    auto u = sc::parse_pkcs11_uri(uri);
    BOOST_TEST_REQUIRE(u.has_value());
    BOOST_TEST(*u->token == "a;b c");
    BOOST_TEST(*u->object == "k/1");
    BOOST_TEST((*u->id == std::vector<unsigned char>{0x00, 0xff, 0x41}));
}
