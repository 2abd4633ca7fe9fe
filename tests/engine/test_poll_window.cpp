// PollWindow: grows while idle gaps end within the limit two at a time, shrinks to nothing when
// they do not, and stays shut for a rhythm of one short gap and one long.
#define BOOST_TEST_MODULE poll_window
#include <boost/test/unit_test.hpp>

#include "poll_window.hpp"

using sluice::PollWindow;
using us = std::chrono::microseconds;
using ms = std::chrono::milliseconds;

BOOST_AUTO_TEST_CASE(opens_after_two_short_gaps_and_doubles_to_the_limit) {
  PollWindow w(us(80));
  BOOST_TEST(w.current().count() == 0);  // no poll before a gap was seen
  w.learn(us(30));
  BOOST_TEST(w.current().count() == 0);  // one short gap may be a reply before a long wait
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
  for (int i = 0; i < 5; ++i) w.learn(us(70));
  BOOST_REQUIRE(w.current() == us(80));
  w.learn(us(81));
  BOOST_TEST(w.current() == us(40));
  w.learn(ms(1000));
  BOOST_TEST(w.current() == us(20));
  w.learn(ms(1000));
  BOOST_TEST(w.current() == us(10));
  w.learn(ms(1000));
  BOOST_TEST(w.current().count() == 0);  // 5 µs would be below limit / 8
  w.learn(ms(1000));
  BOOST_TEST(w.current().count() == 0);
  w.learn(us(20));  // after a long gap, one short one is not enough again
  BOOST_TEST(w.current().count() == 0);
}

BOOST_AUTO_TEST_CASE(a_quick_reply_then_a_long_wait_never_opens_it) {
  // A request every 1 ms whose upstream answers in 20 µs, with a 50 µs limit: the worker's gaps
  // alternate short and long, and polling would catch only the replies after spending the
  // window on every wait. It polls not at all.
  PollWindow w(us(50));
  std::chrono::nanoseconds polled{0};
  for (int i = 0; i < 1000; ++i) {
    polled += w.current();
    w.learn(us(20));
    polled += w.current();
    w.learn(ms(1));
  }
  BOOST_TEST(polled.count() == 0);
}

BOOST_AUTO_TEST_CASE(sparse_events_never_open_it) {
  PollWindow w(us(50));
  for (int i = 0; i < 1000; ++i) {
    BOOST_TEST_REQUIRE(w.current().count() == 0);
    w.learn(ms(1));
  }
}

BOOST_AUTO_TEST_CASE(a_limit_below_eight_nanoseconds_still_opens) {
  PollWindow w(std::chrono::nanoseconds(5));
  w.learn(std::chrono::nanoseconds(3));
  w.learn(std::chrono::nanoseconds(3));
  BOOST_TEST(w.current().count() == 1);
  for (int i = 0; i < 5; ++i) w.learn(std::chrono::nanoseconds(5));
  BOOST_TEST(w.current().count() == 5);
}
