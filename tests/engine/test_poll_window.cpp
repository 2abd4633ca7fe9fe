// PollWindow: grows while idle gaps end within the limit, shrinks to nothing when they do not.
#define BOOST_TEST_MODULE poll_window
#include <boost/test/unit_test.hpp>

#include "poll_window.hpp"

using sluice::PollWindow;
using us = std::chrono::microseconds;

BOOST_AUTO_TEST_CASE(starts_closed_and_doubles_to_the_limit_while_gaps_are_short) {
  PollWindow w(us(80));
  BOOST_TEST(w.current().count() == 0);  // no poll before the first gap was seen
  w.learn(us(30));
  BOOST_TEST(w.current() == us(10));  // limit / 8
  w.learn(us(30));
  BOOST_TEST(w.current() == us(20));
  w.learn(us(30));
  BOOST_TEST(w.current() == us(40));
  w.learn(us(30));  // within the window: caught by polling, nothing to learn
  BOOST_TEST(w.current() == us(40));
  w.learn(us(70));
  BOOST_TEST(w.current() == us(80));
  w.learn(us(79));
  w.learn(us(80));
  BOOST_TEST(w.current() == us(80));  // never past the limit
}

BOOST_AUTO_TEST_CASE(gaps_past_the_limit_halve_it_and_close_it_below_an_eighth) {
  PollWindow w(us(80));
  for (int i = 0; i < 4; ++i) w.learn(us(70));
  BOOST_REQUIRE(w.current() == us(80));
  w.learn(us(81));
  BOOST_TEST(w.current() == us(40));
  w.learn(std::chrono::seconds(1));
  BOOST_TEST(w.current() == us(20));
  w.learn(std::chrono::seconds(1));
  BOOST_TEST(w.current() == us(10));
  w.learn(std::chrono::seconds(1));
  BOOST_TEST(w.current().count() == 0);  // 5 µs would be below limit / 8
  w.learn(std::chrono::seconds(1));
  BOOST_TEST(w.current().count() == 0);
}

BOOST_AUTO_TEST_CASE(sparse_events_cost_at_most_a_few_short_polls) {
  // Events 1 ms apart with a 50 µs limit: one short gap opens the window, the long ones after
  // it close it again within two gaps and keep it closed.
  PollWindow w(us(50));
  w.learn(us(20));
  std::chrono::nanoseconds polled{0};
  for (int i = 0; i < 1000; ++i) {
    polled += w.current();
    w.learn(std::chrono::milliseconds(1));
  }
  BOOST_TEST(polled <= us(7));  // 6.25 µs once, then nothing
}
