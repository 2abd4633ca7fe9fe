#define BOOST_TEST_MODULE replace
#include <boost/test/unit_test.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "replace/replace.hpp"
#include "sluice/testing.hpp"

using sluice::Direction;
using namespace sluice::testing;
using nlohmann::json;

namespace {

// Records what reaches it, to check that held-back bytes arrive before the half-close.
class Probe final : public sluice::Middleware {
 public:
  explicit Probe(std::vector<std::string>& events) : events_(events) {}
  sluice::Verdict on_data(sluice::Context&, Direction d, sluice::Chunk& c) override {
    events_.push_back(std::string(to_string(d)) + " data " + std::string(c.view()));
    return sluice::Verdict::pass;
  }
  void on_end(sluice::Context&, Direction d) override {
    events_.push_back(std::string(to_string(d)) + " end");
  }

 private:
  std::vector<std::string>& events_;
};

class ProbeFactory final : public sluice::MiddlewareFactory {
 public:
  explicit ProbeFactory(std::vector<std::string>& events) : events_(events) {}
  std::unique_ptr<sluice::Middleware> create() override { return std::make_unique<Probe>(events_); }

 private:
  std::vector<std::string>& events_;
};

struct Fixture {
  Types types;
  std::vector<std::string> events;
  Fixture() {
    sluice::builtin::register_replace(types);
    types.add_middleware("probe", "records events", [this](sluice::Options&, sluice::Services&) {
      return std::make_unique<ProbeFactory>(events);
    });
  }
  Chain chain(json options) {
    options["type"] = "replace";
    return Chain(types, json::array({options}));
  }
};

// The whole-string replace the streaming one must agree with.
std::string reference(std::string_view s, std::string_view from, std::string_view to,
                      std::size_t* tail_start = nullptr) {
  std::string out;
  std::size_t done = 0;
  for (auto p = s.find(from); p != std::string_view::npos; p = s.find(from, done)) {
    out.append(s.substr(done, p - done));
    out.append(to);
    done = p + from.size();
  }
  out.append(s.substr(done));
  if (tail_start) *tail_start = done;
  return out;
}

// What the middleware may have emitted after seeing `s` (not yet ended): the reference result
// minus the longest tail of unmatched bytes that is a proper prefix of `from`.
std::string expected_so_far(std::string_view s, std::string_view from, std::string_view to) {
  std::size_t done = 0;
  std::string out = reference(s, from, to, &done);
  const std::string_view tail = s.substr(done);
  for (std::size_t k = std::min(from.size() - 1, tail.size()); k > 0; --k)
    if (tail.ends_with(from.substr(0, k))) return out.substr(0, out.size() - k);
  return out;
}

void expect_config_error(Fixture& f, const json& middlewares, const std::string& path) {
  try {
    Chain c(f.types, middlewares);
    BOOST_FAIL("expected a ConfigError at " + path);
  } catch (const sluice::ConfigError& e) {
    BOOST_TEST(e.path() == path, e.what());
  }
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(replace, Fixture)

BOOST_AUTO_TEST_CASE(replaces_within_one_chunk_without_delay) {
  auto c = chain({{"from", "foo"}, {"to", "bar"}});
  Harness h(c);
  h.feed(Direction::upstream, "a foo b");
  BOOST_TEST(h.take(Direction::upstream) == "a bar b");
  h.feed(Direction::upstream, "unrelated");  // nothing that could start a match: not held
  BOOST_TEST(h.take(Direction::upstream) == "unrelated");
  h.feed(Direction::upstream, "foofoo xfoo!");
  BOOST_TEST(h.take(Direction::upstream) == "barbar xbar!");
}

BOOST_AUTO_TEST_CASE(matches_do_not_overlap_and_go_left_to_right) {
  auto c = chain({{"from", "aa"}, {"to", "X"}});
  Harness h(c);
  h.feed(Direction::upstream, "aaaaa");
  BOOST_TEST(h.take(Direction::upstream) == "XX");  // the last "a" may start a match
  h.feed(Direction::upstream, "ab");
  BOOST_TEST(h.take(Direction::upstream) == "Xb");
}

BOOST_AUTO_TEST_CASE(match_split_across_two_chunks) {
  auto c = chain({{"from", "foo"}, {"to", "bar"}});
  Harness h(c);
  h.feed(Direction::upstream, "xxfo");
  BOOST_TEST(h.take(Direction::upstream) == "xx");
  h.feed(Direction::upstream, "oyy");
  BOOST_TEST(h.take(Direction::upstream) == "baryy");
}

BOOST_AUTO_TEST_CASE(match_split_across_three_chunks) {
  auto c = chain({{"from", "hello"}, {"to", "bye"}});
  Harness h(c);
  h.feed(Direction::upstream, "ahe");
  BOOST_TEST(h.take(Direction::upstream) == "a");
  h.feed(Direction::upstream, "ll");
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.feed(Direction::upstream, "ob");
  BOOST_TEST(h.take(Direction::upstream) == "byeb");
}

BOOST_AUTO_TEST_CASE(byte_by_byte_holds_only_what_could_still_match) {
  const std::string from = "abcab", to = "<>";
  const std::string input = "xabcabcabyabcabcabcab abcaz abca";
  auto c = chain({{"from", from}, {"to", to}});
  Harness h(c);
  std::string out;
  for (std::size_t i = 0; i < input.size(); ++i) {
    h.feed(Direction::upstream, input.substr(i, 1));
    out += h.take(Direction::upstream);
    BOOST_TEST_REQUIRE(out == expected_so_far(input.substr(0, i + 1), from, to), "after " << i + 1);
  }
  h.finish(Direction::upstream);
  out += h.take(Direction::upstream);
  BOOST_TEST(out == reference(input, from, to));
  BOOST_TEST(h.ended(Direction::upstream));
}

BOOST_AUTO_TEST_CASE(a_prefix_that_does_not_match_is_flushed_with_the_next_chunk) {
  auto c = chain({{"from", "foobar"}, {"to", "X"}});
  Harness h(c);
  h.feed(Direction::upstream, "xxfoo");
  BOOST_TEST(h.take(Direction::upstream) == "xx");
  h.feed(Direction::upstream, "baz");
  BOOST_TEST(h.take(Direction::upstream) == "foobaz");
  // A held prefix whose mismatch reveals a shorter prefix: "aab" in "aa" + "aab".
  auto c2 = chain({{"from", "aab"}, {"to", "X"}});
  Harness h2(c2);
  h2.feed(Direction::upstream, "aa");
  BOOST_TEST(h2.take(Direction::upstream) == "");
  h2.feed(Direction::upstream, "aab");
  BOOST_TEST(h2.take(Direction::upstream) == "aaX");
}

BOOST_AUTO_TEST_CASE(held_bytes_go_out_at_the_half_close_before_the_end) {
  Chain c(types, json::parse(R"([{"type": "replace", "from": "foo", "to": "bar"},
                                  {"type": "probe"}])"));
  Harness h(c);
  h.feed(Direction::upstream, "abc fo");
  BOOST_TEST(h.take(Direction::upstream) == "abc ");
  BOOST_TEST(!h.ended(Direction::upstream));
  h.finish(Direction::upstream);
  BOOST_TEST(h.take(Direction::upstream) == "fo");
  BOOST_TEST(h.ended(Direction::upstream));
  const std::vector<std::string> expected = {"upstream data abc ", "upstream data fo",
                                             "upstream end"};
  BOOST_TEST(events == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(direction_filter) {
  for (const std::string dir : {"upstream", "downstream"}) {
    auto c = chain({{"from", "foo"}, {"to", "bar"}, {"direction", dir}});
    Harness h(c);
    h.feed(Direction::upstream, "foo fo");
    h.feed(Direction::downstream, "foo fo");
    const bool up = dir == "upstream";
    BOOST_TEST(h.take(Direction::upstream) == (up ? "bar " : "foo fo"));
    BOOST_TEST(h.take(Direction::downstream) == (up ? "foo fo" : "bar "));
  }
}

BOOST_AUTO_TEST_CASE(both_directions_have_their_own_carry) {
  auto c = chain({{"from", "foo"}, {"to", "bar"}});  // "both" is the default
  Harness h(c);
  h.feed(Direction::upstream, "1 fo");
  h.feed(Direction::downstream, "o 2 f");
  BOOST_TEST(h.take(Direction::upstream) == "1 ");
  BOOST_TEST(h.take(Direction::downstream) == "o 2 ");
  h.feed(Direction::downstream, "oo");
  h.feed(Direction::upstream, "o");
  BOOST_TEST(h.take(Direction::upstream) == "bar");
  BOOST_TEST(h.take(Direction::downstream) == "bar");
  h.feed(Direction::downstream, "f");
  h.finish(Direction::downstream);
  BOOST_TEST(h.take(Direction::downstream) == "f");
  BOOST_TEST(h.ended(Direction::downstream));
  BOOST_TEST(!h.ended(Direction::upstream));
}

BOOST_AUTO_TEST_CASE(empty_and_longer_replacements) {
  auto c = chain({{"from", "foo"}, {"to", ""}});
  Harness h(c);
  h.feed(Direction::upstream, "a foo b foo");
  BOOST_TEST(h.take(Direction::upstream) == "a  b ");
  h.feed(Direction::upstream, "foo");  // the whole chunk disappears
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.feed(Direction::upstream, "z");
  BOOST_TEST(h.take(Direction::upstream) == "z");

  // Growing well past the harness's 4 KiB chunks.
  const std::string to(200, '#');
  auto c2 = chain({{"from", "ab"}, {"to", to}});
  Harness h2(c2);
  std::string input;
  for (int i = 0; i < 1000; ++i) input += "ab-";
  h2.feed(Direction::upstream, input);
  h2.finish(Direction::upstream);
  BOOST_TEST(h2.take(Direction::upstream) == reference(input, "ab", to));
}

BOOST_AUTO_TEST_CASE(randomized_against_whole_string_replace) {
  std::mt19937 rng(20261123);
  auto pick = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  // Small alphabets make self-overlapping patterns and near misses common.
  auto random_string = [&](std::size_t n, std::string_view alphabet) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += alphabet[pick(0, alphabet.size() - 1)];
    return s;
  };
  for (int round = 0; round < 2000; ++round) {
    const std::string from = random_string(pick(1, 6), "ab");
    const std::string to = random_string(pick(0, 8), "abx");
    auto c = chain({{"from", from}, {"to", to}});
    Harness h(c);
    std::string input[2], out[2];
    for (int step = pick(0, 40); step > 0; --step) {
      const auto d = pick(0, 1);
      const Direction dir = d == 0 ? Direction::upstream : Direction::downstream;
      std::string bytes = random_string(pick(0, 12), "abc");
      if (pick(0, 2) == 0) bytes.insert(pick(0, bytes.size()), from);
      input[d] += bytes;
      h.feed(dir, bytes);
      out[d] += h.take(dir);
      BOOST_TEST_REQUIRE(
          out[d] == expected_so_far(input[d], from, to),
          "round " << round << " from \"" << from << "\" input \"" << input[d] << "\"");
    }
    for (std::size_t d = 0; d < 2; ++d) {
      const Direction dir = d == 0 ? Direction::upstream : Direction::downstream;
      h.finish(dir);
      out[d] += h.take(dir);
      BOOST_TEST_REQUIRE(out[d] == reference(input[d], from, to), "round " << round << " from \""
                                                                           << from << "\" input \""
                                                                           << input[d] << "\"");
      BOOST_TEST_REQUIRE(h.ended(dir));
    }
  }
}

BOOST_AUTO_TEST_CASE(config_errors_name_the_json_path) {
  expect_config_error(*this, json::parse(R"([{"type": "replace", "to": "x"}])"),
                      "/middlewares/0/from");
  expect_config_error(*this, json::parse(R"([{"type": "replace", "from": "", "to": "x"}])"),
                      "/middlewares/0/from");
  expect_config_error(*this, json::parse(R"([{"type": "replace", "from": 5, "to": "x"}])"),
                      "/middlewares/0/from");
  expect_config_error(*this, json::parse(R"([{"type": "replace", "from": "a"}])"),
                      "/middlewares/0/to");
  expect_config_error(*this, json::parse(R"([
      {"type": "replace", "from": "a", "to": "b"},
      {"type": "replace", "from": "a", "to": "b", "direction": "sideways"}])"),
                      "/middlewares/1/direction");
  expect_config_error(*this, json::parse(R"([{"type": "replace", "from": "a", "to": "b",
                                              "form": "c"}])"),
                      "/middlewares/0/form");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_CASE(held_bytes_go_out_after_hold_timeout, Fixture) {
  auto c = chain({{"from", "needle"}, {"to", "N"}});  // default hold_timeout: 100ms
  Harness h(c);
  h.feed(Direction::upstream, "xxnee");
  BOOST_TEST(h.take(Direction::upstream) == "xx");
  h.advance(std::chrono::milliseconds(99));
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.advance(std::chrono::milliseconds(1));
  BOOST_TEST(h.take(Direction::upstream) == "nee");
  // Nothing is left behind: a later match is still found, and the end adds nothing.
  h.feed(Direction::upstream, "a needle");
  h.finish(Direction::upstream);
  BOOST_TEST(h.take(Direction::upstream) == "a N");
}

BOOST_FIXTURE_TEST_CASE(hold_timeout_counts_from_the_last_chunk, Fixture) {
  auto c = chain({{"from", "needle"}, {"to", "N"}, {"hold_timeout", "100ms"}});
  Harness h(c);
  h.feed(Direction::upstream, "ne");
  h.advance(std::chrono::milliseconds(60));
  h.feed(Direction::upstream, "e");  // still a prefix: held since now
  h.advance(std::chrono::milliseconds(40));
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.advance(std::chrono::milliseconds(59));
  BOOST_TEST(h.take(Direction::upstream) == "");
  h.advance(std::chrono::milliseconds(1));
  BOOST_TEST(h.take(Direction::upstream) == "nee");
}

BOOST_FIXTURE_TEST_CASE(a_match_completed_in_time_is_replaced, Fixture) {
  auto c = chain({{"from", "needle"}, {"to", "N"}});
  Harness h(c);
  h.feed(Direction::downstream, "nee");
  h.advance(std::chrono::milliseconds(50));
  h.feed(Direction::downstream, "dle!");
  BOOST_TEST(h.take(Direction::downstream) == "N!");
  h.advance(std::chrono::seconds(1));
  BOOST_TEST(h.take(Direction::downstream) == "");
}

BOOST_FIXTURE_TEST_CASE(hold_timeout_zero_holds_until_more_bytes_or_the_end, Fixture) {
  auto c = chain({{"from", "needle"}, {"to", "N"}, {"hold_timeout", 0}});
  Harness h(c);
  h.feed(Direction::upstream, "xxnee");
  h.advance(std::chrono::seconds(10));
  BOOST_TEST(h.take(Direction::upstream) == "xx");
  BOOST_TEST(h.pending_timers() == 0u);
  h.finish(Direction::upstream);
  BOOST_TEST(h.take(Direction::upstream) == "nee");
}

BOOST_FIXTURE_TEST_CASE(bad_hold_timeout_is_a_config_error, Fixture) {
  try {
    chain({{"from", "a"}, {"to", "b"}, {"hold_timeout", "soon"}});
    BOOST_FAIL("no error");
  } catch (const sluice::ConfigError& e) {
    BOOST_TEST(e.path() == "/middlewares/0/hold_timeout");
  }
}
