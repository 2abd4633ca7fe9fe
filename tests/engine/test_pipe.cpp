// PipePool: bounded, reuses emptied pipes, closes pipes that still hold bytes.
#define BOOST_TEST_MODULE pipe
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include "pipe.hpp"

using sluice::Pipe;
using sluice::PipePool;

BOOST_AUTO_TEST_CASE(take_stops_at_max_open_and_give_frees_a_slot) {
  PipePool pool(3, 2);
  std::vector<Pipe> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(pool.take());
    BOOST_TEST(static_cast<bool>(held.back()));
    BOOST_TEST(held.back().capacity() >= 64u * 1024);
  }
  BOOST_TEST(pool.open_count() == 3u);
  BOOST_TEST(!pool.take(), "a fourth pipe past max_open");
  pool.give(std::move(held.back()), true);
  held.pop_back();
  BOOST_TEST(static_cast<bool>(pool.take()), "the given-back pipe serves again");
}

BOOST_AUTO_TEST_CASE(an_emptied_pipe_is_reused_a_full_one_closed) {
  PipePool pool(4, 1);
  Pipe a = pool.take();
  const int a_read = a.read_end();
  pool.give(std::move(a), true);
  Pipe again = pool.take();
  BOOST_TEST(again.read_end() == a_read, "the free list handed back the same pipe");

  BOOST_REQUIRE(::write(again.write_end(), "x", 1) == 1);
  pool.give(std::move(again), false);
  BOOST_TEST(pool.open_count() == 0u, "a pipe with bytes in it is closed, never reused");
  char c;
  BOOST_TEST(::read(a_read, &c, 1) == -1, "its descriptors are closed");
}

BOOST_AUTO_TEST_CASE(the_free_list_is_bounded) {
  PipePool pool(8, 2);
  std::vector<Pipe> held;
  for (int i = 0; i < 5; ++i) held.push_back(pool.take());
  for (auto& p : held) pool.give(std::move(p), true);
  BOOST_TEST(pool.open_count() == 2u, "past max_free, emptied pipes are closed");
}
