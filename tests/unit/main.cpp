// SPDX-License-Identifier: MIT
#define BOOST_TEST_MODULE crypt_agent_unit
#include <boost/test/unit_test.hpp>
