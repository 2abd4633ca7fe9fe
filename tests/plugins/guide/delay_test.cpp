// file: tests/plugins/guide/delay_test.cpp
#define BOOST_TEST_MODULE delay
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

#include <sluice/testing.hpp>

namespace delay {
void register_types(sluice::Registry& registry);  // from delay.cpp
}

using namespace std::chrono_literals;
using sluice::Direction;
using nlohmann::json;

BOOST_AUTO_TEST_CASE(holds_bytes_and_the_half_close_until_the_timer_fires) {
  sluice::testing::Types types;
  delay::register_types(types);
  sluice::testing::Chain chain(types, json::parse(R"([
    {"type": "delay", "delay": "250ms", "direction": "upstream"}
  ])"));
  sluice::testing::Harness h(chain);

  h.feed(Direction::upstream, "abc");
  h.finish(Direction::upstream);
  BOOST_TEST(h.take(Direction::upstream) == "");
  BOOST_TEST(h.paused(Direction::upstream));  // the engine would stop reading the client
  BOOST_TEST(!h.ended(Direction::upstream));  // the FIN waits behind the held bytes

  h.advance(249ms);
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.advance(1ms);
  BOOST_TEST(h.take(Direction::upstream) == "abc");
  BOOST_TEST(!h.paused(Direction::upstream));
  BOOST_TEST(h.ended(Direction::upstream));

  h.feed(Direction::downstream, "not delayed");
  BOOST_TEST(h.take(Direction::downstream) == "not delayed");
}

BOOST_AUTO_TEST_CASE(a_bad_duration_names_its_json_path) {
  sluice::testing::Types types;
  delay::register_types(types);
  try {
    sluice::testing::Chain chain(types, json::parse(R"([{"type": "delay", "delay": "soon"}])"));
    BOOST_FAIL("expected a ConfigError");
  } catch (const sluice::ConfigError& e) {
    BOOST_TEST(e.path() == "/middlewares/0/delay");
  }
}
