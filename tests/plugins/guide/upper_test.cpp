// file: tests/plugins/guide/upper_test.cpp
#define BOOST_TEST_MODULE upper
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <sluice/testing.hpp>

namespace upper {
void register_types(sluice::Registry& registry);  // from upper.cpp
}

using sluice::Direction;
using nlohmann::json;

BOOST_AUTO_TEST_CASE(upper_cases_what_the_client_sends) {
  sluice::testing::Types types;
  upper::register_types(types);
  sluice::testing::Chain chain(types, json::parse(R"([{"type": "upper"}])"));
  sluice::testing::Harness h(chain);

  h.feed(Direction::upstream, "hello, world\n");
  BOOST_TEST(h.take(Direction::upstream) == "HELLO, WORLD\n");
  h.feed(Direction::downstream, "ok\n");
  BOOST_TEST(h.take(Direction::downstream) == "ok\n");

  h.finish(Direction::upstream);
  BOOST_TEST(h.ended(Direction::upstream));
  BOOST_TEST(!h.closed());
}

BOOST_AUTO_TEST_CASE(an_unknown_option_names_its_json_path) {
  sluice::testing::Types types;
  upper::register_types(types);
  try {
    sluice::testing::Chain chain(types, json::parse(R"([{"type": "upper", "mode": "all"}])"));
    BOOST_FAIL("expected a ConfigError");
  } catch (const sluice::ConfigError& e) {
    BOOST_TEST(e.path() == "/middlewares/0/mode");
    BOOST_TEST(e.message() == "unknown key");
  }
}
