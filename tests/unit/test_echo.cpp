#define BOOST_TEST_MODULE echo
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "echo/echo.hpp"
#include "replace/replace.hpp"
#include "sluice/testing.hpp"

using sluice::Direction;
using namespace sluice::testing;
using nlohmann::json;

namespace {

struct Fixture {
  Types types;
  Fixture() {
    sluice::builtin::register_echo(types);
    sluice::builtin::register_replace(types);
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(echo, Fixture)

BOOST_AUTO_TEST_CASE(answers_the_client_and_never_connects) {
  Chain c(types, json::parse(R"([{"type": "echo"}])"));
  Harness h(c);
  BOOST_TEST(h.deferred());
  BOOST_TEST(!h.connected());
  h.feed(Direction::upstream, "hello");
  h.feed(Direction::upstream, " world");
  BOOST_TEST(h.take(Direction::downstream) == "hello world");
  BOOST_TEST(h.take(Direction::upstream) == "");
  BOOST_TEST(!h.ended(Direction::downstream));
  h.finish(Direction::upstream);
  BOOST_TEST(h.ended(Direction::downstream));
  BOOST_TEST(h.take(Direction::upstream) == "");
  BOOST_TEST(!h.closed());
}

BOOST_AUTO_TEST_CASE(middlewares_nearer_the_client_see_the_reply_and_flush_before_the_end) {
  // replace sits between the client and echo: it sees echo's reply in the downstream direction
  // and must get its held-back bytes out before the downstream half-close.
  Chain c(types, json::parse(R"([
      {"type": "replace", "from": "abc", "to": "X", "direction": "downstream"},
      {"type": "echo"}])"));
  Harness h(c);
  h.feed(Direction::upstream, "xxab");
  BOOST_TEST(h.take(Direction::downstream) == "xx");
  h.feed(Direction::upstream, "cab");
  BOOST_TEST(h.take(Direction::downstream) == "X");
  BOOST_TEST(!h.ended(Direction::downstream));
  h.finish(Direction::upstream);
  BOOST_TEST(h.take(Direction::downstream) == "ab");
  BOOST_TEST(h.ended(Direction::downstream));
}

BOOST_AUTO_TEST_CASE(takes_no_options) {
  try {
    Chain c(types, json::parse(R"([{"type": "echo", "upstream": "x"}])"));
    BOOST_FAIL("expected a ConfigError");
  } catch (const sluice::ConfigError& e) {
    BOOST_TEST(e.path() == "/middlewares/0/upstream");
  }
}

BOOST_AUTO_TEST_SUITE_END()
