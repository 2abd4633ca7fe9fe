#define BOOST_TEST_MODULE pass
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "pass/pass.hpp"
#include "sluice/testing.hpp"

using sluice::Direction;
using namespace sluice::testing;
using nlohmann::json;

BOOST_AUTO_TEST_CASE(eight_in_a_row_pass_bytes_and_half_closes_untouched) {
  Types types;
  sluice::builtin::register_pass(types);
  Chain c(types, json(8, {{"type", "pass"}}));
  Harness h(c);
  const std::string bytes("\0\xff binary", 9);
  h.feed(Direction::upstream, bytes);
  h.feed(Direction::downstream, "back");
  BOOST_TEST(h.take(Direction::upstream) == bytes);
  BOOST_TEST(h.take(Direction::downstream) == "back");
  h.finish(Direction::upstream);
  BOOST_TEST(h.ended(Direction::upstream));
  BOOST_TEST(!h.closed());
}

BOOST_AUTO_TEST_CASE(takes_no_options) {
  Types types;
  sluice::builtin::register_pass(types);
  try {
    Chain c(types, json::parse(R"([{"type": "pass", "x": 1}])"));
    BOOST_FAIL("no error");
  } catch (const sluice::ConfigError& e) {
    BOOST_TEST(e.path() == "/middlewares/0/x");
    BOOST_TEST(e.message() == "unknown key");
  }
}
